"""`wattsched run` as a child process: the one wrapper that the integration tests, the e2e suite,
the benchmark and the demo start the operator with.

On the local control plane there is no kubelet to run the chart's Deployment, so the operator
runs here instead, with the flags the Deployment passes (helm/wattsched/templates/_helpers.tpl,
"wattsched.args"), 127.0.0.1 for the bind address and a kubeconfig instead of in-cluster
config. Given a kubeconfig holding a token of the chart's ServiceAccount, whatever RBAC the
chart grants is all it can do, as in a cluster.

- `start()` launches it and returns at once, so that several replicas start side by side;
  `wait_ready()` waits for /readyz (with ``leading=True`` also for the Lease). As a context
  manager it starts, waits for /readyz and stops.
- Each start takes a free 127.0.0.1 port for /metrics, /healthz and /readyz, so a process
  started again after `kill()` never meets its predecessor's socket; the log (stdout and
  stderr) is appended to `log_path` across starts.
- It runs in a session of its own: `kill()` is a real SIGKILL of everything it forked (no
  Lease release, binds in flight cut off), `stop()` a SIGTERM with a SIGKILL after
  STOP_TIMEOUT_SECONDS. Unless `outlive_parent`, it also gets SIGTERM when the thread that
  started it dies (setpriv's parent-death signal), so a crashed test leaves no operator behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from types import TracebackType

from e2e.providers.local import free_port

REPO = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_SECONDS = 20.0
KILL_TIMEOUT_SECONDS = 10.0
READY_TIMEOUT_SECONDS = 90.0

# A scraped sample: (name, sorted (label, value) pairs) -> value.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class OperatorError(RuntimeError):
    """The operator did not get ready or exited early; carries the end of its log."""


def wattsched_run_available() -> str | None:
    """None when `wattsched run` exists; otherwise why not (the operator may not have landed)."""
    proc = subprocess.run(
        [sys.executable, "-m", "wattsched", "run", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=REPO,
    )
    if proc.returncode == 0:
        return None
    return f"`wattsched run --help` exited {proc.returncode}: {proc.stderr.strip()[-400:]}"


@dataclass(eq=False)  # a process handle: equal only to itself, hashable
class OperatorProcess:
    kubeconfig: Path
    log_path: Path
    _: KW_ONLY
    lease_namespace: str
    scheduler_name: str = "wattsched"
    lease_name: str = "wattsched-leader"
    lease_duration_seconds: float = 15.0
    identity: str | None = None  # None: the command's own default, $HOSTNAME_pid
    status_interval_seconds: float = 2.0
    log_format: str = "text"
    log_level: str = "info"
    outlive_parent: bool = False  # the demo leaves it running after the command returns
    extra_args: tuple[str, ...] = ()  # more flags, e.g. --prometheus-url=...
    port: int = field(default=0, init=False)  # the metrics port of the latest start
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    starts: int = field(default=0, init=False)

    def argv(self) -> list[str]:
        argv = [
            sys.executable, "-m", "wattsched", "run",
            f"--kubeconfig={self.kubeconfig}",
            f"--scheduler-name={self.scheduler_name}",
            f"--metrics-port={self.port}",
            "--bind-address=127.0.0.1",
            f"--lease-name={self.lease_name}",
            f"--lease-namespace={self.lease_namespace}",
            f"--lease-duration-seconds={self.lease_duration_seconds}",
            f"--log-format={self.log_format}",
            f"--log-level={self.log_level}",
            f"--status-interval-seconds={self.status_interval_seconds}",
        ]  # fmt: skip
        if self.identity:
            argv.append(f"--identity={self.identity}")
        argv.extend(self.extra_args)
        return argv

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise OperatorError("the operator was never started")
        return self.process.pid

    def start(self) -> OperatorProcess:
        """Launch the process on a fresh port and return; `wait_ready()` waits for it."""
        if self.alive():
            raise OperatorError(f"the operator runs already (pid {self.pid})")
        self.port = free_port()
        # Only the kubeconfig it is given: an admin's $KUBECONFIG must not widen its rights.
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["PYTHONUNBUFFERED"] = "1"
        env["POD_NAMESPACE"] = self.lease_namespace  # as the Deployment's downward API sets it
        if self.identity:
            env["HOSTNAME"] = self.identity
        setpriv = None if self.outlive_parent else shutil.which("setpriv")
        prefix = [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child holds its own descriptor
            self.process = subprocess.Popen(
                prefix + self.argv(),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.starts += 1
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code once it has exited; None while it runs, or before it first starts."""
        return None if self.process is None else self.process.poll()

    def wait_ready(
        self, timeout_seconds: float = READY_TIMEOUT_SECONDS, *, leading: bool = False
    ) -> OperatorProcess:
        """Until /readyz answers 200 (the cache holds its initial lists) and, with ``leading``,
        this replica holds the Lease. Raises OperatorError with the log's tail if it exits or
        the time runs out; the process is left to the caller's stop()."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            if not self.alive():
                raise OperatorError(f"wattsched run exited {self.returncode}:\n{self.log_tail()}")
            if self._get("/readyz")[0] == 200 and (
                not leading or self.metric("wattsched_leader") == 1.0
            ):
                return self
            if time.monotonic() > deadline:
                what = "/readyz and the Lease" if leading else "/readyz"
                raise OperatorError(
                    f"{what} not there within {timeout_seconds:.0f}s; log {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.2)

    def _get(self, path: str) -> tuple[int, str]:
        """(HTTP status, body) of a GET on the metrics port; status 0 when nothing answers."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as response:
                return int(response.status), response.read().decode(errors="replace")
        except urllib.error.HTTPError as err:
            return int(err.code), ""
        except OSError:
            return 0, ""

    def http_ok(self, path: str) -> bool:
        return self._get(path)[0] == 200

    def metrics(self) -> Samples:
        """Every sample of /metrics, by name and labels."""
        from prometheus_client.parser import text_string_to_metric_families

        status, text = self._get("/metrics")
        if status != 200:
            raise OperatorError(f"/metrics answered {status}:\n{self.log_tail()}")
        samples: Samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample, or None while the endpoint is not up (a process just started)."""
        if not self.http_ok("/healthz"):
            return None
        return self.metrics().get((name, tuple(sorted(labels.items()))))

    def kill(self) -> None:
        """SIGKILL: no Lease release, no goodbye; binds in flight are cut off."""
        if self.process is not None and self.alive():
            self._signal(signal.SIGKILL)
            self.process.wait(timeout=KILL_TIMEOUT_SECONDS)

    def stop(self) -> int:
        """SIGTERM (the operator stops binding, releases its Lease, exits), SIGKILL if it
        lingers; the exit code (0 when it never started or had exited with 0)."""
        if self.process is None:
            return 0
        if self.alive():
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(timeout=KILL_TIMEOUT_SECONDS)
        return int(self.process.returncode or 0)

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):  # it exited since the check
            os.killpg(self.process.pid, sig)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> OperatorProcess:
        self.start()
        try:
            return self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

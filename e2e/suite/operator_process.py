"""`wattsched run` as a local process, with the chart's ServiceAccount token.

On the local control plane there is no kubelet to run the chart's Deployment, so the suite and
the RBAC test run the operator here instead, with exactly the flags the Deployment passes and
a kubeconfig holding a token of the chart's ServiceAccount: whatever RBAC the chart grants is
all it can do, as in a cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from e2e.providers.local import free_port

STOP_TIMEOUT_SECONDS = 15.0


class OperatorError(RuntimeError):
    """The operator did not start or exited early; carries the end of its log."""


def wattsched_run_available() -> str | None:
    """None when `wattsched run` exists; otherwise why not (the operator may not have landed)."""
    proc = subprocess.run(
        [sys.executable, "-m", "wattsched", "run", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if proc.returncode == 0:
        return None
    return f"`wattsched run --help` exited {proc.returncode}: {proc.stderr.strip()[-400:]}"


@dataclass
class OperatorProcess:
    kubeconfig: Path
    lease_namespace: str
    log_path: Path
    scheduler_name: str = "wattsched"
    lease_name: str = "wattsched-leader"
    identity: str = "wattsched-local"
    status_interval_seconds: int = 1
    lease_duration_seconds: int = 15
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def argv(self) -> list[str]:
        # The Deployment's args (helm/wattsched/templates/_helpers.tpl, "wattsched.args"),
        # with 127.0.0.1 for the bind address and the kubeconfig instead of in-cluster config.
        return [
            sys.executable, "-m", "wattsched", "run",
            f"--kubeconfig={self.kubeconfig}",
            f"--scheduler-name={self.scheduler_name}",
            f"--metrics-port={self.metrics_port}",
            "--bind-address=127.0.0.1",
            f"--lease-name={self.lease_name}",
            f"--lease-namespace={self.lease_namespace}",
            f"--lease-duration-seconds={self.lease_duration_seconds}",
            f"--identity={self.identity}",
            "--log-format=text",
            "--log-level=info",
            f"--status-interval-seconds={self.status_interval_seconds}",
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def start(self, timeout_seconds: float = 90) -> OperatorProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["POD_NAMESPACE"] = self.lease_namespace
        env["HOSTNAME"] = self.identity
        setpriv = shutil.which("setpriv")
        prefix = [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []
        self.process = subprocess.Popen(
            prefix + self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_seconds
        while not self.http_ok("/healthz"):
            if self.process.poll() is not None:
                raise OperatorError(
                    f"wattsched run exited {self.process.returncode}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise OperatorError(
                    f"/healthz not OK within {timeout_seconds:.0f}s:\n{self.tail()}"
                )
            time.sleep(0.25)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def http_ok(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
            return str(response.read().decode())

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

"""A throw-away Prometheus on 127.0.0.1: the telemetry store of the measured-power tests.

The real ``prometheus`` (DESIGN.md §6), built once from its Go module by
``e2e.providers.build.ensure_prometheus``, scrapes the given targets (the test exporters of
``e2e.providers.power_exporter``) every second by default, and answers the HTTP API at ``url``:

    with PowerExporter() as exporter, LocalPrometheus([exporter.target]) as prometheus:
        prometheus.wait_for_targets_up()
        prometheus.query('DCGM_FI_DEV_POWER_USAGE{Hostname="gpu-n1"}')

It listens on a free port of 127.0.0.1 and nowhere else (no remote-write or OTLP receiver, no
admin API, no lifecycle endpoints), keeps its TSDB in a working folder of its own, and runs in a
process group of its own that gets SIGTERM when this process dies (as the control plane's
components do, ``e2e.providers.local``).
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from e2e.providers.build import ensure_prometheus
from e2e.providers.local import Component, _log_tail, _spawn, free_port, port_is_bound

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
JOB_NAME = "power"
DISCOVERY_RELOAD_MILLISECONDS = 200


class PrometheusError(RuntimeError):
    """Prometheus did not start, or its API answered with an error; the message says which."""


def scrape_config(
    targets: Sequence[str], *, scrape_interval_seconds: float, job_name: str = JOB_NAME
) -> dict[str, Any]:
    """The configuration file's content: one job scraping ``targets`` (``host:port``)."""
    interval = f"{int(scrape_interval_seconds * 1000)}ms"
    return {
        "global": {
            "scrape_interval": interval,
            # A scrape may not outlast its interval; the test exporters answer in milliseconds.
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "scrape_configs": [
            {
                "job_name": job_name,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }


class LocalPrometheus:
    """``prometheus`` scraping ``targets`` every ``scrape_interval_seconds``, in ``workdir``.

    Use it as a context manager, or ``start()`` and ``stop()``. ``workdir`` defaults to a new
    temporary folder, removed again by ``stop()`` unless start-up failed (its log is there).
    """

    def __init__(
        self,
        targets: Sequence[str],
        *,
        binary: Path | None = None,
        scrape_interval_seconds: float = 1.0,
        workdir: Path | str | None = None,
        extra_flags: Sequence[str] = (),
    ) -> None:
        if scrape_interval_seconds < 0.001:
            raise ValueError(
                f"scrape_interval_seconds must be at least 0.001, got {scrape_interval_seconds}"
            )
        self.targets = tuple(targets)
        self.binary = binary
        self.scrape_interval_seconds = scrape_interval_seconds
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else None
        self.extra_flags = tuple(extra_flags)
        self.component: Component | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL of the HTTP API, ``http://127.0.0.1:<port>``."""
        if self.component is None:
            raise PrometheusError("Prometheus has not been started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return self.component.log_path if self.component else None

    # - lifecycle -

    def __enter__(self) -> LocalPrometheus:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> LocalPrometheus:
        if self.component is not None:
            raise PrometheusError("Prometheus is already running")
        binary = self.binary or ensure_prometheus()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="wattsched-prometheus-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "prometheus.yml"
        config = scrape_config(self.targets, scrape_interval_seconds=self.scrape_interval_seconds)
        config_path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
        self.port = free_port()
        argv = [
            str(binary),
            f"--config.file={config_path}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            "--storage.tsdb.retention.time=1d",
            # The scrape manager takes up discovered targets on this tick (5 s by default), so
            # the first scrape of a static target waited 5 s; a test waits for that scrape.
            f"--scrape.discovery-reload-interval={DISCOVERY_RELOAD_MILLISECONDS}ms",
            "--log.level=info",
            *self.extra_flags,
        ]
        self.component = _spawn("prometheus", argv, self.workdir, (self.port,))
        atexit.register(self.stop)
        try:
            self._wait_ready()
        except BaseException:
            self._stop_component()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.component is not None
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if not self.component.alive():
                raise self._failure(f"exited with {self.component.process.returncode}")
            if self._get_status(f"{self.url}/-/ready") == 200:
                return
            time.sleep(0.1)
        raise self._failure(f"was not ready within {READY_TIMEOUT_SECONDS:.0f}s")

    def _failure(self, what: str) -> PrometheusError:
        assert self.component is not None
        return PrometheusError(
            f"prometheus {what}; its log is {self.component.log_path}, which ends:\n"
            f"{_log_tail(self.component.log_path)}"
        )

    def stop(self) -> None:
        """Stop Prometheus and free its port; removes its own temporary folder. Idempotent."""
        if self.component is None:
            return
        self._stop_component()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while port_is_bound(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._owns_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _stop_component(self) -> None:
        atexit.unregister(self.stop)
        if self.component is not None:
            self.component.stop(STOP_TIMEOUT_SECONDS)
            self.component = None

    # - the HTTP API -

    @staticmethod
    def _get_status(url: str) -> int | None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as err:
            return err.code
        except (urllib.error.URLError, OSError):
            return None

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``; PrometheusError when it failed."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"{self.url}/api/v1/{path}{query}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as err:
            # The API answers errors as JSON too (400 bad query, 422 cannot execute, ...).
            try:
                body = json.load(err)
            except ValueError:
                raise PrometheusError(f"GET {url} answered {err.code}") from err
        except (urllib.error.URLError, OSError) as err:
            raise PrometheusError(f"GET {url} failed: {err}") from err
        if body.get("status") != "success":
            raise PrometheusError(
                f"GET {url}: {body.get('errorType', 'error')}: {body.get('error', body)}"
            )
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query: the result vector, each ``{"metric": {...}, "value": [t, "v"]}``."""
        data = self.api("query", query=promql)
        if data.get("resultType") != "vector":
            raise PrometheusError(
                f"query {promql!r} gave a {data.get('resultType')}, not an instant vector"
            )
        return list(data["result"])

    def targets_health(self) -> dict[str, str]:
        """Each active target's scrape URL and its health: up, down or unknown (not yet
        scraped), with the last scrape error after a colon when there was one."""
        data = self.api("targets", state="active")
        return {
            t["scrapeUrl"]: t["health"] + (f": {t['lastError']}" if t.get("lastError") else "")
            for t in data["activeTargets"]
        }

    def wait_for_targets_up(self, timeout_seconds: float = 30.0) -> None:
        """Wait until every target has been scraped successfully at least once."""
        deadline = time.monotonic() + timeout_seconds
        health: dict[str, str] = {}
        while time.monotonic() < deadline:
            health = self.targets_health()
            if len(health) == len(self.targets) and all(h == "up" for h in health.values()):
                return
            time.sleep(min(0.2, self.scrape_interval_seconds))
        raise PrometheusError(
            f"not every target was scraped within {timeout_seconds:.0f}s; "
            f"health by target: {health or 'no active targets'}"
        )

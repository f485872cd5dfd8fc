"""A stand-in for the vendors' device exporters: per-device power in Prometheus text format.

Measured-power admission (DESIGN.md §2b) reads watts that the exporters a site already runs
publish, through Prometheus. Tests cannot run those exporters (they need the hardware), so this
serves the same metric names with the same labels, and the test sets the watts:

    exporter = PowerExporter().start()
    exporter.set_watts(DCGM, node="gpu-n1", device=0, watts=612.5)
    LocalPrometheus(targets=[exporter.target])   # e2e.providers.prometheus

Each vendor metric is a `DevicePowerMetric`, with the labels its exporter puts on a device
(taken from the exporters' sources; the node label differs by vendor and release, so
`with_node_label` gives the same metric under another one):

- NVIDIA dcgm-exporter: ``DCGM_FI_DEV_POWER_USAGE{gpu, UUID, pci_bus_id, device, modelName,
  Hostname}`` in W (release 4.8.3 of July 2026 renamed ``Hostname`` to ``hostname``).
- Rebellions rbln-metrics-exporter: ``RBLN_DEVICE_STATUS:CARD_POWER{card, name, uuid, deviceID,
  hostname, driver_version, firmware_version}`` in W (the colon is legal in a metric name).
- FuriosaAI furiosa-metrics-exporter: ``furiosa_npu_hw_power{arch, core, device, uuid,
  pci_bus_id, firmware_version, pert_version, driver_version, hostname, label="rms"}`` in W
  (older releases wrote ``kubernetes_node_name``).

Only 127.0.0.1 is listened on. Readings live in a dict behind a lock: the HTTP server answers in
a thread of its own while the test changes them.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (node, device index) -> the labels the vendor's exporter puts on that device, node label aside.
DeviceLabels = Callable[[str, int], dict[str, str]]


@dataclass(frozen=True)
class DevicePowerMetric:
    """One vendor's per-device power metric: its name, its node label, its device labels."""

    vendor: str
    name: str
    node_label: str
    help: str
    device_labels: DeviceLabels = field(compare=False, repr=False)

    def with_node_label(self, node_label: str) -> DevicePowerMetric:
        """The same metric as an exporter release that names the node label differently."""
        return replace(self, node_label=node_label)

    def labels(self, node: str, device: int) -> dict[str, str]:
        return {**self.device_labels(node, device), self.node_label: node}


def device_uuid(vendor: str, node: str, device: int) -> str:
    """A stable UUID per device, so series keep their identity across scrapes and tests."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"wattsched-test://{vendor}/{node}/{device}"))


def _pci_bus_id(device: int) -> str:
    return f"00000000:{0x18 + 0x10 * device:02X}:00.0"


def _dcgm_labels(node: str, device: int) -> dict[str, str]:
    return {
        "gpu": str(device),
        "UUID": f"GPU-{device_uuid('nvidia', node, device)}",
        "pci_bus_id": _pci_bus_id(device),
        "device": f"nvidia{device}",
        "modelName": "NVIDIA H100 80GB HBM3",
    }


def _rbln_labels(node: str, device: int) -> dict[str, str]:
    return {
        "card": "RBLN-CA25",
        "name": f"rbln{device}",
        "uuid": device_uuid("rebellions", node, device),
        "deviceID": "1250",
        "driver_version": "2.0.1",
        "firmware_version": "2.0.1",
    }


def _furiosa_labels(node: str, device: int) -> dict[str, str]:
    return {
        "arch": "rngd",
        "core": "0-7",
        "device": f"npu{device}",
        "uuid": device_uuid("furiosa", node, device),
        "pci_bus_id": _pci_bus_id(device),
        "firmware_version": "2025.3.0",
        "pert_version": "2025.3.0",
        "driver_version": "2025.3.0",
        "label": "rms",
    }


DCGM = DevicePowerMetric(
    vendor="nvidia",
    name="DCGM_FI_DEV_POWER_USAGE",
    node_label="Hostname",
    help="Power draw (in W).",
    device_labels=_dcgm_labels,
)
RBLN = DevicePowerMetric(
    vendor="rebellions",
    name="RBLN_DEVICE_STATUS:CARD_POWER",
    node_label="hostname",
    help="Card power usage (W)",
    device_labels=_rbln_labels,
)
FURIOSA = DevicePowerMetric(
    vendor="furiosa",
    name="furiosa_npu_hw_power",
    node_label="hostname",
    help="The current power of NPU device",
    device_labels=_furiosa_labels,
)
VENDOR_METRICS = (DCGM, RBLN, FURIOSA)


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


@dataclass(frozen=True)
class _Reading:
    labels: tuple[tuple[str, str], ...]
    watts: float


class PowerExporter:
    """An HTTP server on 127.0.0.1 serving the power readings set on it at ``/metrics``.

    Use it as a context manager, or ``start()`` and ``stop()``. ``target`` is the
    ``host:port`` a Prometheus scrape config names.
    """

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._lock = threading.Lock()
        # (metric, node, device) -> reading; a dict keeps the order readings were first set.
        self._readings: dict[tuple[DevicePowerMetric, str, int], _Reading] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.scrapes = 0

    # - readings -

    def set_watts(
        self,
        metric: DevicePowerMetric,
        *,
        node: str,
        device: int,
        watts: float,
        extra_labels: Mapping[str, str] | None = None,
    ) -> None:
        """Publish ``watts`` for one device of ``node`` (replacing what it read before).

        ``extra_labels`` adds or overrides labels, e.g. the pod attribution the exporters add.
        """
        if device < 0:
            raise ValueError(f"device index must be 0 or more, got {device}")
        labels = {**metric.labels(node, device), **(extra_labels or {})}
        reading = _Reading(tuple(sorted(labels.items())), float(watts))
        with self._lock:
            self._readings[(metric, node, device)] = reading

    def set_node_watts(
        self, metric: DevicePowerMetric, *, node: str, watts_per_device: list[float]
    ) -> None:
        """Publish one reading per device of ``node``: device i reads ``watts_per_device[i]``."""
        for device, watts in enumerate(watts_per_device):
            self.set_watts(metric, node=node, device=device, watts=watts)

    def remove(
        self, metric: DevicePowerMetric | None = None, *, node: str, device: int | None = None
    ) -> int:
        """Stop publishing a node's readings (one device, one metric, or all); how many went.

        The series then vanish from the next scrape, and Prometheus marks them stale: what a
        node whose exporter died looks like.
        """
        with self._lock:
            gone = [
                key
                for key in self._readings
                if key[1] == node
                and (metric is None or key[0] == metric)
                and (device is None or key[2] == device)
            ]
            for key in gone:
                del self._readings[key]
        return len(gone)

    def clear(self) -> None:
        with self._lock:
            self._readings.clear()

    def render(self) -> str:
        """The exposition text a scrape gets now: one HELP and TYPE per metric family."""
        with self._lock:
            readings = list(self._readings.items())
        families: dict[str, list[str]] = {}
        helps: dict[str, str] = {}
        for (metric, _node, _device), reading in readings:
            labels = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in reading.labels)
            helps.setdefault(metric.name, metric.help)
            families.setdefault(metric.name, []).append(
                f"{metric.name}{{{labels}}} {_format_value(reading.watts)}"
            )
        lines: list[str] = []
        for name, samples in families.items():
            lines.append(f"# HELP {name} {helps[name]}")
            lines.append(f"# TYPE {name} gauge")
            lines.extend(samples)
        return "\n".join(lines) + "\n" if lines else ""

    # - server -

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the power exporter has not been started")
        return int(self._server.server_address[1])

    @property
    def target(self) -> str:
        """``127.0.0.1:<port>``, as a Prometheus static_configs target."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.target}/metrics"

    def start(self) -> PowerExporter:
        if self._server is not None:
            raise RuntimeError("the power exporter is already running")
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404, "only /metrics is served here")
                    return
                body = exporter.render().encode()
                with exporter._lock:
                    exporter.scrapes += 1
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args: object) -> None:
                pass  # one line per scrape every second would drown the test output

        self._server = ThreadingHTTPServer(("127.0.0.1", self._requested_port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"power-exporter-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port; idempotent."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> PowerExporter:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

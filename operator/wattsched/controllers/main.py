"""`wattsched run`: the operator process — kopf's watches, the cache, the Lease, the loop, /metrics.

Every flag has an environment variable (for the Helm chart) and a default that works in a
cluster. Shutdown on SIGTERM stops binding first, then releases the Lease so a standby takes
over at once, then stops the watches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wattsched.commands import Command, command

log = logging.getLogger("wattsched")

DEFAULT_LEASE_NAMESPACE = "wattsched-system"
LIST_PATHS = {
    "nodes": "/api/v1/nodes",
    "pods": "/api/v1/pods",
    "acceleratorpools": "/apis/wattsched.io/v1alpha1/acceleratorpools",
    "powerbudgets": "/apis/wattsched.io/v1alpha1/powerbudgets",
}


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _boolean(text: str) -> bool:
    """An on/off flag's value, from the command line or an environment variable."""
    word = text.strip().lower()
    if word in ("true", "1", "yes", "on"):
        return True
    if word in ("false", "0", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean: write true or false")


def default_identity() -> str:
    return f"{os.environ.get('HOSTNAME') or socket.gethostname()}_{os.getpid()}"


@dataclass(frozen=True)
class RunOptions:
    kubeconfig: str | None
    scheduler_name: str
    metrics_port: int
    bind_address: str
    lease_name: str
    lease_namespace: str
    lease_duration_seconds: float
    identity: str
    log_format: str
    log_level: str
    status_interval_seconds: float
    allow_unguarded_nodes: bool
    prometheus_url: str
    telemetry_interval_seconds: float

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunOptions:
        return cls(
            kubeconfig=args.kubeconfig,
            scheduler_name=args.scheduler_name,
            metrics_port=args.metrics_port,
            bind_address=args.bind_address,
            lease_name=args.lease_name,
            lease_namespace=args.lease_namespace,
            lease_duration_seconds=args.lease_duration_seconds,
            identity=args.identity or default_identity(),
            log_format=args.log_format,
            log_level=args.log_level,
            status_interval_seconds=args.status_interval_seconds,
            allow_unguarded_nodes=args.allow_unguarded_nodes,
            prometheus_url=args.prometheus_url,
            telemetry_interval_seconds=args.telemetry_interval_seconds,
        )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags; each falls back to an environment variable, then to a default."""
    flags: list[tuple[str, type, str | None, str]] = [
        ("--kubeconfig", str, os.environ.get("KUBECONFIG") or None,
         "kubeconfig file (env KUBECONFIG); default: in-cluster, else ~/.kube/config"),
        ("--scheduler-name", str, _env("WATTSCHED_SCHEDULER_NAME", "wattsched"),
         "schedule pods whose spec.schedulerName is this (env WATTSCHED_SCHEDULER_NAME)"),
        ("--metrics-port", int, _env("WATTSCHED_METRICS_PORT", "8080"),
         "port of /metrics, /healthz and /readyz (env WATTSCHED_METRICS_PORT)"),
        ("--bind-address", str, _env("WATTSCHED_BIND_ADDRESS", "0.0.0.0"),
         "address the metrics server listens on (env WATTSCHED_BIND_ADDRESS)"),
        ("--lease-name", str, _env("WATTSCHED_LEASE_NAME", "wattsched-leader"),
         "the coordination.k8s.io/v1 Lease (env WATTSCHED_LEASE_NAME)"),
        ("--lease-namespace", str,
         _env("WATTSCHED_LEASE_NAMESPACE", _env("POD_NAMESPACE", DEFAULT_LEASE_NAMESPACE)),
         "namespace of the Lease (env WATTSCHED_LEASE_NAMESPACE, else POD_NAMESPACE, "
         f"else {DEFAULT_LEASE_NAMESPACE})"),
        ("--lease-duration-seconds", float, _env("WATTSCHED_LEASE_DURATION_SECONDS", "15"),
         "how long the lease lasts unrenewed (env WATTSCHED_LEASE_DURATION_SECONDS)"),
        ("--identity", str, os.environ.get("WATTSCHED_IDENTITY") or None,
         "holder identity in the Lease (env WATTSCHED_IDENTITY; default $HOSTNAME_pid)"),
        ("--log-format", str, _env("WATTSCHED_LOG_FORMAT", "text"),
         "text, or json: one JSON object a line (env WATTSCHED_LOG_FORMAT)"),
        ("--log-level", str, _env("WATTSCHED_LOG_LEVEL", "info").lower(),
         "debug, info, warning or error (env WATTSCHED_LOG_LEVEL)"),
        ("--status-interval-seconds", float, _env("WATTSCHED_STATUS_INTERVAL_SECONDS", "2"),
         "debounce of pool and budget status patches (env WATTSCHED_STATUS_INTERVAL_SECONDS)"),
        ("--prometheus-url", str, _env("WATTSCHED_PROMETHEUS_URL", ""),
         "Prometheus HTTP API for budgets with admission: Measured, e.g. "
         "http://prometheus-operated.monitoring:9090; empty: none, such budgets stay on "
         "nameplate (env WATTSCHED_PROMETHEUS_URL)"),
        ("--telemetry-interval-seconds", float, _env("WATTSCHED_TELEMETRY_INTERVAL_SECONDS", "15"),
         "seconds between each pool's one Prometheus query "
         "(env WATTSCHED_TELEMETRY_INTERVAL_SECONDS)"),
    ]  # fmt: skip
    choices = {
        "--log-format": ("text", "json"),
        "--log-level": ("debug", "info", "warning", "error"),
    }
    for flag, kind, default, help_text in flags:
        parser.add_argument(
            flag,
            type=kind,
            default=kind(default) if default is not None else None,
            choices=choices.get(flag),
            help=f"{help_text}; default: {default}" if default is not None else help_text,
        )
    parser.add_argument(
        "--allow-unguarded-nodes",
        type=_boolean,
        nargs="?",
        const=True,
        default=_env("WATTSCHED_ALLOW_UNGUARDED_NODES", "false"),
        metavar="true|false",
        help="also bind accelerator pods to nodes whose power no PowerBudget guards, or that are "
        "not in exactly one AcceleratorPool listing the resource: their watts go unaccounted "
        "(env WATTSCHED_ALLOW_UNGUARDED_NODES); default: false, such nodes are unfit",
    )


# -- logging ------------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(log_format: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = __import__("time").gmtime
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kopf logs every watch reconnect at info; its warnings are what matter to us.
    logging.getLogger("kopf").setLevel("DEBUG" if level == "debug" else "WARNING")
    logging.getLogger("aiohttp.access").setLevel("WARNING")


# -- the process --------------------------------------------------------------------------------


async def _expect_initial_lists(cache: Any, client: Any) -> None:
    """LIST each kind once (metadata only): the cache is synced when the watch has shown them."""
    from wattsched.kube.client import KubeApiError, KubeUnavailable

    for kind, path in LIST_PATHS.items():
        while True:
            try:
                cache.expect(kind, await client.list_uids(path))
                break
            except (KubeApiError, KubeUnavailable) as err:
                log.warning("initial list of %s failed, retrying: %s", kind, err)
                await asyncio.sleep(2)
    while not cache.synced.is_set():
        await asyncio.sleep(5)
        if cache.synced.is_set():
            break
        log.info("waiting for the watch to show the initial lists: %s", cache.missing())
        for kind, count in cache.missing().items():
            if count > 0:  # some may have been deleted before the watch began: list again
                with contextlib.suppress(KubeApiError, KubeUnavailable):
                    cache.still_listed(kind, await client.list_uids(LIST_PATHS[kind]))


async def operate(options: RunOptions) -> int:
    import kopf

    from wattsched.cluster.cache import ClusterCache
    from wattsched.controllers.handlers import build_registry, operator_settings
    from wattsched.controllers.loop import SchedulingLoop
    from wattsched.controllers.outcomes import LoopSettings
    from wattsched.kube.client import KubeClient, load_connection
    from wattsched.kube.lease import LeaderElector
    from wattsched.kube.writer import KubeWriter
    from wattsched.metrics import Metrics, serve
    from wattsched.scheduling.config import SchedulerConfig
    from wattsched.scheduling.scheduler import Scheduler
    from wattsched.telemetry.prometheus import PrometheusClient

    connection = load_connection(options.kubeconfig)
    client = KubeClient(connection)
    cache = ClusterCache(options.scheduler_name)
    metrics = Metrics()
    elector = LeaderElector(
        client,
        namespace=options.lease_namespace,
        name=options.lease_name,
        identity=options.identity,
        lease_duration_seconds=options.lease_duration_seconds,
    )
    elector.on_change = lambda leading: metrics.leader.set(1 if leading else 0)
    loop = SchedulingLoop(
        cache,
        Scheduler(SchedulerConfig(allow_unguarded_nodes=options.allow_unguarded_nodes)),
        KubeWriter(client, options.identity),
        elector,
        metrics,
        settings=LoopSettings(
            status_interval_seconds=options.status_interval_seconds,
            telemetry_interval_seconds=options.telemetry_interval_seconds,
        ),
        telemetry=PrometheusClient(options.prometheus_url) if options.prometheus_url else None,
    )
    runner = await serve(metrics, options.bind_address, options.metrics_port, cache.synced.is_set)
    log.info(
        "wattsched run: scheduler %s, identity %s, lease %s/%s, metrics on %s:%d, API %s",
        options.scheduler_name, options.identity, options.lease_namespace, options.lease_name,
        options.bind_address, options.metrics_port, connection.server,
    )  # fmt: skip
    if options.allow_unguarded_nodes:
        log.warning(
            "--allow-unguarded-nodes: accelerator pods may be bound to nodes that no PowerBudget "
            "guards or no single AcceleratorPool accounts for; their watts are in no ledger"
        )

    stopping = asyncio.Event()
    event_loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        event_loop.add_signal_handler(sig, stopping.set)
    kopf_stop = asyncio.Event()
    tasks: dict[str, asyncio.Task[Any]] = {
        # kopf replaces our signal handlers with its own; it then ends, which stops us too.
        "kopf": asyncio.create_task(
            kopf.operator(
                registry=build_registry(cache, connection),
                settings=operator_settings(),
                standalone=True,
                clusterwide=True,
                stop_flag=kopf_stop,
            )
        ),
        "initial lists": asyncio.create_task(_expect_initial_lists(cache, client)),
        "scheduling loop": asyncio.create_task(loop.run()),
    }
    elector.start_in_thread(connection)
    stop_waiter = asyncio.create_task(stopping.wait())
    exit_code = 0
    try:
        watched = [stop_waiter, *(t for n, t in tasks.items() if n != "initial lists")]
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        for name, task in tasks.items():
            if task in done and not task.cancelled() and task.exception() is not None:
                log.error("%s failed: %s", name, task.exception(), exc_info=task.exception())
                exit_code = 1
            elif task in done and name != "kopf":
                log.error("%s ended unexpectedly", name)
                exit_code = 1
    finally:
        log.info("stopping: no more binds, releasing the lease")
        for name in ("scheduling loop", "initial lists"):
            tasks[name].cancel()
        await _settle(tasks["scheduling loop"], tasks["initial lists"])
        await elector.stop_and_release()
        kopf_stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(_settle(tasks["kopf"]), timeout=10)
        # kopf's watch generators may complain while the loop closes them; nothing is lost.
        event_loop.set_exception_handler(_quiet_at_exit)
        stop_waiter.cancel()
        await runner.cleanup()
        await client.close()
    log.info("stopped")
    return exit_code


def _quiet_at_exit(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    log.debug("at exit: %s", context.get("message"))


async def _settle(*tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _exit_before_start(signum: int, frame: Any) -> None:
    raise SystemExit(0)  # nothing held yet: no lease, no binds in flight


def run(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _exit_before_start)  # until the event loop takes over
    options = RunOptions.from_args(args)
    if options.prometheus_url and not options.prometheus_url.startswith(("http://", "https://")):
        print(
            f"wattsched run: --prometheus-url {options.prometheus_url!r} must start with "
            "http:// or https://, e.g. http://prometheus-operated.monitoring:9090",
            file=sys.stderr,
        )
        return 2
    if options.telemetry_interval_seconds <= 0:
        print("wattsched run: --telemetry-interval-seconds must be above 0, e.g. 15",
              file=sys.stderr)  # fmt: skip
        return 2
    configure_logging(options.log_format, options.log_level)
    return asyncio.run(operate(options))


@command("run", "run the operator: watch the cluster, schedule pods, keep status true")
def _run(parser: argparse.ArgumentParser) -> Command:
    add_run_arguments(parser)
    runner: Callable[[argparse.Namespace], int] = run
    return runner

"""A throw-away Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, controller-manager.

This is the envtest approach (DESIGN.md §6): real binaries, built once from the Go modules by
``e2e.providers.build``, started on free local ports in a working folder of their own. There are
no kubelets; ``e2e.providers.kubelet`` plays their part for fake nodes.

Authentication and authorization are those of a real cluster, so RBAC is enforced:

- One CA (``pki/ca.crt``) signs the API server's serving certificate and the clients'.
- The admin is a client certificate for user ``wattsched-admin`` in group ``system:masters``,
  which RBAC lets do anything; the kubeconfig written to ``<workdir>/kubeconfig`` embeds it.
- Service accounts are enforced by RBAC. The API server signs their tokens with
  ``pki/sa.key`` (``--service-account-issuer``), so the TokenRequest API works:
  ``LocalControlPlane.service_account_token(namespace, name)``, or ``kubectl create token``.
- kube-controller-manager runs only controllers that make sense without kubelets: the
  ``serviceaccount`` controller (every namespace gets its ``default`` ServiceAccount, which the
  ServiceAccount admission plugin needs before a pod is admitted), ``disruption`` (PDB status,
  so the Eviction API honours PodDisruptionBudgets), ``namespace`` (namespaces really go away),
  ``garbagecollector`` (owner references), ``root-ca-cert-publisher`` and
  ``clusterrole-aggregation`` (the aggregated admin/edit/view roles). Not the node lifecycle
  controller: it would taint and evict the fake nodes, whose kubelets never report. For the
  same reason the ``TaintNodesByCondition`` admission plugin is off.

Run ``python -m e2e.providers.local up --dir DIR`` to keep one running in the foreground (add
``--detach`` to return once it is ready), and ``python -m e2e.providers.local down --dir DIR``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

from e2e.providers.build import Binaries, binaries, ensure_control_plane
from e2e.providers.kubelet import FakeKubelet

ADMIN_USER = "wattsched-admin"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
CONTROLLERS = (
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "disruption-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
)
STOP_TIMEOUT_SECONDS = 10.0
READY_TIMEOUT_SECONDS = 90.0


class ControlPlaneError(RuntimeError):
    """A component did not start or stop; the message names it and carries its log tail."""


def _say(message: str) -> None:
    print(f"[wattsched local] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


# --- certificates ------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ControlPlaneError("openssl is not on PATH; it generates the control plane's certs")
    proc = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")


def _genkey(name: str, cwd: Path) -> None:
    # ECDSA P-256: as good as RSA here, and generated in milliseconds where RSA takes a
    # second or more on a loaded CI machine (a start-up makes four keys).
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name,
             cwd=cwd)  # fmt: skip


def generate_pki(pki: Path) -> None:
    """CA, serving cert for 127.0.0.1/localhost, admin client cert, service-account key pair.

    Kept when already there, so a restart in the same folder keeps its kubeconfig valid."""
    pki.mkdir(parents=True, exist_ok=True)
    if (pki / "admin.crt").exists() and (pki / "sa.pub").exists():
        return
    days = "3650"
    _genkey("ca.key", pki)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-days", days, "-subj", "/CN=wattsched-local-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "-out", "ca.crt", cwd=pki,
    )  # fmt: skip
    (pki / "serving.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1\n"
    )
    (pki / "client.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=clientAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    for name, subject, ext in (
        ("serving", "/CN=kube-apiserver", "serving.ext"),
        ("admin", f"/O=system:masters/CN={ADMIN_USER}", "client.ext"),
    ):
        _genkey(f"{name}.key", pki)
        _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr",
                 cwd=pki)  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", days, "-extfile", ext, "-out", f"{name}.crt", cwd=pki,
        )  # fmt: skip
    _genkey("sa.key", pki)
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kubeconfig_text(
    server: str, ca: Path, *, user: str, client_cert: Path | None = None,
    client_key: Path | None = None, token: str | None = None,
) -> str:  # fmt: skip
    """A kubeconfig with everything embedded, for a client certificate or a bearer token."""
    credentials: dict[str, str] = {}
    if client_cert is not None and client_key is not None:
        credentials["client-certificate-data"] = _b64(client_cert)
        credentials["client-key-data"] = _b64(client_key)
    if token is not None:
        credentials["token"] = token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "wattsched-local",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {"name": "wattsched-local", "context": {"cluster": "wattsched-local", "user": user}}
        ],
        "current-context": "wattsched-local",
    }
    return json.dumps(config, indent=2) + "\n"  # JSON is YAML, and needs no dependency


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Component:
    """One running binary: its own process group, its log file, the ports it holds."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    ports: tuple[int, ...]
    log_file: IO[bytes] = field(repr=False)

    def alive(self) -> bool:
        return self.process.poll() is None

    def failure(self, what: str) -> ControlPlaneError:
        return ControlPlaneError(
            f"{self.name} {what}; its log is {self.log_path}, which ends:\n"
            f"{_log_tail(self.log_path)}"
        )

    def stop(self, timeout_seconds: float = STOP_TIMEOUT_SECONDS) -> None:
        """SIGTERM to the whole process group, SIGKILL if it is still there after the timeout."""
        if self.alive():
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_seconds)
            except subprocess.TimeoutExpired:
                _say(f"{self.name} ignored SIGTERM for {timeout_seconds:.0f}s; killing it")
                self._signal_group(signal.SIGKILL)
                self.process.wait(timeout=timeout_seconds)
        # The group may hold children that outlived the leader; they go too.
        self._signal_group(signal.SIGKILL)
        self.log_file.close()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)


def _spawn(name: str, argv: list[str], workdir: Path, ports: tuple[int, ...]) -> Component:
    log_path = workdir / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("ab")
    # A new session gives the component its own process group, so stop() reaches every
    # process it forks. setpriv's parent-death signal makes it exit even when this Python
    # process is killed outright and never runs stop(): no orphans holding ports.
    setpriv = shutil.which("setpriv")
    prefix = [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []
    process = subprocess.Popen(
        prefix + argv,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Component(name, process, log_path, ports, log_file)


# --- the control plane -------------------------------------------------------------------------


class LocalControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager) on 127.0.0.1, in ``workdir``.

    Use it as a context manager, or ``start()`` and ``stop()``. ``workdir`` defaults to a new
    temporary folder, removed again by a clean ``stop()`` (kept when start-up failed, for the
    logs). A given ``workdir`` is kept, and a restart in it reuses its certificates.
    """

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        bins: Binaries | None = None,
        controller_manager: bool = True,
        fake_kubelet: bool = False,
        extra_apiserver_flags: Sequence[str] = (),
    ) -> None:
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else None
        self.bins = bins
        self.with_controller_manager = controller_manager
        self.with_fake_kubelet = fake_kubelet
        self.kubelet: FakeKubelet | None = None
        self.extra_apiserver_flags = tuple(extra_apiserver_flags)
        self.components: list[Component] = []
        self.apiserver_port = 0
        self.etcd_port = 0
        self.start_seconds = 0.0

    # - paths -

    def _dir(self) -> Path:
        if self.workdir is None:
            raise ControlPlaneError("the control plane has not been started")
        return self.workdir

    @property
    def pki(self) -> Path:
        return self._dir() / "pki"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (system:masters, client certificate embedded)."""
        return self._dir() / "kubeconfig"

    @property
    def _components_kubeconfig(self) -> Path:
        """The admin kubeconfig the components use, there before the public one."""
        return self.pki / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(port for c in self.components for port in c.ports)

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(c.process.pid for c in self.components)

    # - lifecycle -

    def __enter__(self) -> LocalControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> LocalControlPlane:
        if self.components:
            raise ControlPlaneError("the control plane is already running")
        started = time.monotonic()
        self.bins = self.bins or ensure_control_plane()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="wattsched-cp-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        _say(f"starting a local control plane in {self.workdir}")
        _register_for_exit(self)
        try:
            generate_pki(self.pki)
            self._start_etcd()
            self._start_apiserver()
            self._write_admin_kubeconfig(self._components_kubeconfig)
            if self.with_controller_manager:
                self._start_controller_manager()
            if self.with_fake_kubelet:
                self.kubelet = FakeKubelet(self._components_kubeconfig).start()
            # Written last: whoever waits for this file finds the whole control plane up.
            self._write_admin_kubeconfig(self.kubeconfig)
        except BaseException:
            self._stop_kubelet()
            self._stop_components()
            _unregister(self)
            _say(f"start-up failed; logs are kept in {self.workdir / 'logs'}")
            raise
        self.start_seconds = time.monotonic() - started
        _say(f"ready in {self.start_seconds:.1f}s: {self.server}, KUBECONFIG={self.kubeconfig}")
        return self

    def stop(self) -> None:
        """Stop every component (newest first) and free its ports; idempotent."""
        if not self.components:
            return
        ports = self.ports
        self._stop_kubelet()
        self._stop_components()
        _unregister(self)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while any(port_is_bound(p) for p in ports) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._owns_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        _say("stopped")

    def _stop_kubelet(self) -> None:
        if self.kubelet is not None:
            self.kubelet.stop()
            self.kubelet = None

    def _stop_components(self) -> None:
        while self.components:
            self.components.pop().stop()

    def _start_etcd(self) -> None:
        assert self.bins is not None
        self.etcd_port, peer_port = free_port(), free_port()
        client_url = f"http://127.0.0.1:{self.etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        argv = [
            str(self.bins.etcd),
            "--name=wattsched",
            f"--data-dir={self._dir() / 'etcd'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=wattsched={peer_url}",
            "--initial-cluster-state=new",
            # A test cluster does not need durability, and fsync dominates small writes.
            "--unsafe-no-fsync=true",
            "--quota-backend-bytes=8589934592",
            "--log-level=warn",
        ]
        _say(f"starting etcd on 127.0.0.1:{self.etcd_port}")
        etcd = _spawn("etcd", argv, self._dir(), (self.etcd_port, peer_port))
        self.components.append(etcd)
        self._wait_until(etcd, "is healthy", lambda: _http_ok(f"{client_url}/health"))

    def _start_apiserver(self) -> None:
        assert self.bins is not None
        self.apiserver_port = free_port()
        pki = self.pki
        argv = [
            str(self.bins.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # The `kubernetes` Service's endpoints may not be a loopback address, and nothing
            # in the cluster needs them.
            "--endpoint-reconciler-type=none",
            f"--secure-port={self.apiserver_port}",
            f"--cert-dir={self._dir() / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'serving.crt'}",
            f"--tls-private-key-file={pki / 'serving.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
            "--authorization-mode=Node,RBAC",
            "--anonymous-auth=false",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--allow-privileged=true",
            # Without a node lifecycle controller nothing would ever lift the not-ready taint
            # that this plugin puts on every new Node.
            "--disable-admission-plugins=TaintNodesByCondition",
            # Tests create thousands of objects in bursts.
            "--max-requests-inflight=1000",
            "--max-mutating-requests-inflight=500",
            "--profiling=false",
            "--v=1",
            *self.extra_apiserver_flags,
        ]
        _say(f"starting kube-apiserver on {self.server}")
        apiserver = _spawn("kube-apiserver", argv, self._dir(), (self.apiserver_port,))
        self.components.append(apiserver)
        context = self.admin_ssl_context()
        self._wait_until(apiserver, "is ready", lambda: _http_ok(f"{self.server}/readyz", context))

    def _start_controller_manager(self) -> None:
        assert self.bins is not None
        port = free_port()
        pki = self.pki
        argv = [
            str(self.bins.kube_controller_manager),
            f"--kubeconfig={self._components_kubeconfig}",
            f"--authentication-kubeconfig={self._components_kubeconfig}",
            f"--authorization-kubeconfig={self._components_kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self._dir() / 'controller-manager-certs'}",
            f"--controllers={','.join(CONTROLLERS)}",
            "--leader-elect=false",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=false",
            "--v=1",
        ]
        _say("starting kube-controller-manager (" + ", ".join(CONTROLLERS) + ")")
        manager = _spawn("kube-controller-manager", argv, self._dir(), (port,))
        self.components.append(manager)
        # The serviceaccount controller creating default/default shows the manager is at work.
        self._wait_until(manager, "creates the default ServiceAccount", self._has_default_sa)

    def _wait_until(self, component: Component, what: str, check: Any) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if not component.alive():
                raise component.failure(f"exited with {component.process.returncode}")
            if check():
                return
            time.sleep(0.1)
        raise component.failure(f"did not report that it {what} within {READY_TIMEOUT_SECONDS}s")

    # - clients -

    def admin_ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return context

    def _write_admin_kubeconfig(self, target: Path) -> None:
        text = kubeconfig_text(
            self.server,
            self.pki / "ca.crt",
            user=ADMIN_USER,
            client_cert=self.pki / "admin.crt",
            client_key=self.pki / "admin.key",
        )
        partial = target.with_suffix(".partial")
        partial.write_text(text)
        partial.chmod(0o600)
        partial.replace(target)  # atomic: whoever waits for the file sees it whole

    def _has_default_sa(self) -> bool:
        url = f"{self.server}/api/v1/namespaces/default/serviceaccounts/default"
        return _http_ok(url, self.admin_ssl_context())

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` for the admin."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as the admin; raises ControlPlaneError with stderr when it fails."""
        kubectl = self.bins.kubectl if self.bins else binaries().kubectl
        cmd = [str(kubectl), f"--kubeconfig={self.kubeconfig}", *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr}"
            )
        return proc

    def service_account_token(
        self, namespace: str, name: str, *, expiration_seconds: int = 3600
    ) -> str:
        """Mint a token for a ServiceAccount through the TokenRequest API."""
        body = json.dumps(
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {
                    "audiences": [SERVICE_ACCOUNT_ISSUER],
                    "expirationSeconds": expiration_seconds,
                },
            }
        ).encode()
        url = f"{self.server}/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, context=self.admin_ssl_context(), timeout=10) as r:
            return str(json.load(r)["status"]["token"])

    def write_service_account_kubeconfig(
        self, path: Path | str, namespace: str, name: str, *, expiration_seconds: int = 3600
    ) -> Path:
        """A kubeconfig that acts as the ServiceAccount (RBAC applies), with a fresh token."""
        token = self.service_account_token(namespace, name, expiration_seconds=expiration_seconds)
        target = Path(path)
        target.write_text(
            kubeconfig_text(
                self.server, self.pki / "ca.crt", user=f"{namespace}-{name}", token=token
            )
        )
        target.chmod(0o600)
        return target


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


# Control planes still running when the interpreter exits (an exception, sys.exit, the end of a
# test session that forgot stop()) are stopped then; the parent-death signal covers SIGKILL.
_running: set[LocalControlPlane] = set()
_running_lock = threading.Lock()


def _register_for_exit(plane: LocalControlPlane) -> None:
    with _running_lock:
        if not _running:
            import atexit

            atexit.register(_stop_all)
        _running.add(plane)


def _unregister(plane: LocalControlPlane) -> None:
    with _running_lock:
        _running.discard(plane)


def _stop_all() -> None:
    with _running_lock:
        planes = list(_running)
    for plane in planes:
        plane.stop()


# --- command line ------------------------------------------------------------------------------


def _running_pid(workdir: Path) -> int | None:
    """The pid of the `up` that owns ``workdir``, if it is still alive."""
    try:
        pid = int((workdir / "local.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _up(workdir: Path, controller_manager: bool, fake_kubelet: bool) -> int:
    running = _running_pid(workdir)
    if running is not None:
        print(
            f"error: a control plane already runs in {workdir} (pid {running}); "
            f"stop it with `python -m e2e.providers.local down --dir {workdir}`",
            file=sys.stderr,
        )
        return 1
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "kubeconfig").unlink(missing_ok=True)
    shutil.rmtree(workdir / "etcd", ignore_errors=True)  # each `up` is a fresh cluster
    (workdir / "local.pid").write_text(f"{os.getpid()}\n")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    plane = LocalControlPlane(
        workdir, controller_manager=controller_manager, fake_kubelet=fake_kubelet
    )
    try:
        plane.start()
        print(f"export KUBECONFIG={plane.kubeconfig}", flush=True)
        _say(f"running; stop with Ctrl-C or `python -m e2e.providers.local down --dir {workdir}`")
        while not stop.wait(1.0):
            for component in plane.components:
                if not component.alive():
                    raise component.failure(f"exited with {component.process.returncode}")
    except ControlPlaneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        plane.stop()
        (workdir / "kubeconfig").unlink(missing_ok=True)
        (workdir / "local.pid").unlink(missing_ok=True)
    return 0


def _up_detached(workdir: Path, controller_manager: bool, fake_kubelet: bool) -> int:
    """Start `up` as a background process and return once its kubeconfig exists."""
    running = _running_pid(workdir)
    if running is not None:
        _say(f"already running in {workdir} (pid {running})")
        print(f"export KUBECONFIG={workdir / 'kubeconfig'}", flush=True)
        return 0
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "kubeconfig").unlink(missing_ok=True)
    log_path = workdir / "local.log"
    argv = [sys.executable, "-m", "e2e.providers.local", "up", "--dir", str(workdir)]
    if not controller_manager:
        argv.append("--no-controller-manager")
    if not fake_kubelet:
        argv.append("--no-fake-kubelet")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=Path(__file__).resolve().parents[2],
        )
    _say(f"starting in the background (pid {process.pid}, log {log_path})")
    # The first run may build the binaries, which takes minutes: no fixed deadline while
    # the background process is alive, and its progress is relayed here as it comes.
    with log_path.open("rb") as progress:
        while not (workdir / "kubeconfig").exists():
            sys.stderr.buffer.write(progress.read())
            sys.stderr.flush()
            if process.poll() is not None:
                sys.stderr.buffer.write(progress.read())
                print(f"error: the control plane did not start; see {log_path}", file=sys.stderr)
                return 1
            time.sleep(0.2)
        sys.stderr.buffer.write(progress.read())
        sys.stderr.flush()
    print(f"export KUBECONFIG={workdir / 'kubeconfig'}", flush=True)
    return 0


def _down(workdir: Path) -> int:
    pid = _running_pid(workdir)
    if pid is None:
        _say(f"nothing running in {workdir}")
        (workdir / "local.pid").unlink(missing_ok=True)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 3 * STOP_TIMEOUT_SECONDS + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            _say("stopped")
            return 0
        time.sleep(0.2)
    print(f"error: process {pid} did not stop; see {workdir / 'local.log'}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start a control plane and keep it running")
    up.add_argument("--dir", type=Path, required=True, help="working folder; kubeconfig lands here")
    up.add_argument("--detach", action="store_true", help="return once it is ready")
    up.add_argument(
        "--no-controller-manager", action="store_true", help="etcd and kube-apiserver only"
    )
    up.add_argument(
        "--no-fake-kubelet", action="store_true", help="do not animate the fake nodes' pods"
    )
    down = commands.add_parser("down", help="stop the control plane started with `up --dir`")
    down.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    workdir = args.dir.resolve()
    if args.command == "down":
        return _down(workdir)
    options = (not args.no_controller_manager, not args.no_fake_kubelet)
    if args.detach:
        return _up_detached(workdir, *options)
    return _up(workdir, *options)


if __name__ == "__main__":
    raise SystemExit(main())

"""Build the Kubernetes control-plane binaries from their Go modules and cache them.

There is no Docker engine and no download site on the machines wattsched is developed
and tested on, only the Go module proxy. So the binaries the tests need are compiled
from source, once, and cached under ``~/.cache/wattsched/bin/<release>/``. A second
call finds them and returns at once.

``prometheus``, the telemetry store of the measured-power tests (DESIGN.md §2b, §6), is built
the same way into a folder of its own, named by its version, so a new pin builds anew.

Run it directly to warm the cache: ``python -m e2e.providers.build`` (control plane and
prometheus; ``--with-helm`` adds helm).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.7.3"
HELM_VERSION = "v3.22.0"
# Prometheus 3.x is published on the module proxy as v0.3XX.Y: v0.316.0 is Prometheus 3.16.0.
PROMETHEUS_VERSION = "v0.316.0"
# Built without `builtinassets`: the web UI's embedded assets need npm, and the tests use only
# the HTTP API, which works without them (the UI pages answer 404). `remove_all_sd` leaves out
# the cloud and Kubernetes service discoveries and their SDKs (static, file and HTTP discovery
# stay), so there is less to compile; the tests scrape static targets on 127.0.0.1.
PROMETHEUS_BUILD_TAGS = ("remove_all_sd",)

KUBERNETES_BINARIES = ("kube-apiserver", "kubectl", "kube-scheduler", "kube-controller-manager")


def cache_root() -> Path:
    """Where everything built is kept; WATTSCHED_CACHE moves it (CI may point it elsewhere)."""
    override = os.environ.get("WATTSCHED_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "wattsched"


def bin_dir() -> Path:
    return cache_root() / "bin" / f"k8s-{KUBERNETES_VERSION}-etcd-{ETCD_VERSION}"


def prometheus_bin_dir() -> Path:
    return cache_root() / "bin" / f"prometheus-{PROMETHEUS_VERSION}"


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    etcd: Path
    kubectl: Path
    kube_scheduler: Path
    kube_controller_manager: Path
    helm: Path
    prometheus: Path


def binaries() -> Binaries:
    root = bin_dir()
    return Binaries(
        kube_apiserver=root / "kube-apiserver",
        etcd=root / "etcd",
        kubectl=root / "kubectl",
        kube_scheduler=root / "kube-scheduler",
        kube_controller_manager=root / "kube-controller-manager",
        helm=root / "helm",
        prometheus=prometheus_bin_dir() / "prometheus",
    )


class BuildError(RuntimeError):
    """The control plane could not be built; the message says which step and why."""


def _say(message: str) -> None:
    print(f"[wattsched build] {message}", file=sys.stderr, flush=True)


def _run(cmd: list[str], cwd: Path, what: str) -> str:
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-mod=mod")
    env["CGO_ENABLED"] = "0"
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    # `go build` is silent for minutes, so progress cannot ride on its output lines:
    # a reader thread collects the output while this loop ticks every 30 seconds.
    output: list[str] = []

    def collect() -> None:
        assert proc.stdout is not None
        output.extend(proc.stdout)

    reader = threading.Thread(target=collect, name=f"build-output-{what}", daemon=True)
    reader.start()
    while True:
        try:
            proc.wait(timeout=30)
            break
        except subprocess.TimeoutExpired:
            _say(f"{what}: still working ({time.monotonic() - started:.0f}s)")
    reader.join()
    if proc.returncode != 0:
        tail = "".join(output[-40:])
        raise BuildError(f"{what} failed (exit {proc.returncode}) running {' '.join(cmd)}:\n{tail}")
    _say(f"{what}: done in {time.monotonic() - started:.0f}s")
    return "".join(output)


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "the Go toolchain is not on PATH; the local control plane and prometheus are "
            "compiled from their Go modules, so install Go 1.25 or newer first"
        )
    return go


def _staging_replaces(go: str, workdir: Path) -> list[str]:
    """k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
    ./staging paths; from outside the repository they must point at the published v0.Y.Z."""
    out = _run(
        [go, "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"],
        workdir,
        f"download k8s.io/kubernetes {KUBERNETES_VERSION} go.mod",
    )
    info = json.loads(out[out.index("{") :])
    gomod = Path(info["GoMod"]).read_text()
    staging = sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/", gomod, re.M)))
    if not staging:
        raise BuildError("found no staging replaces in k8s.io/kubernetes's go.mod")
    minor = KUBERNETES_VERSION.lstrip("v").split(".", 1)[1]
    return [f"{module} => {module} v0.{minor}" for module in staging]


def _build_kubernetes(go: str, out: Path) -> None:
    work = cache_root() / "src" / f"kubernetes-{KUBERNETES_VERSION}"
    work.mkdir(parents=True, exist_ok=True)
    replaces = _staging_replaces(go, work)
    (work / "go.mod").write_text(
        "module wattsched.local/controlplane\n\ngo 1.25\n\n"
        f"require k8s.io/kubernetes {KUBERNETES_VERSION}\n\n"
        "replace (\n" + "".join(f"\t{r}\n" for r in replaces) + ")\n"
    )
    (work / "tools.go").write_text(
        "//go:build tools\n\npackage tools\n\nimport (\n"
        + "".join(f'\t_ "k8s.io/kubernetes/cmd/{b}"\n' for b in KUBERNETES_BINARIES)
        + ")\n"
    )
    _say(f"resolving k8s.io/kubernetes {KUBERNETES_VERSION} dependencies (first time: minutes)")
    _run([go, "mod", "tidy"], work, "go mod tidy (kubernetes)")
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    ldflags = " ".join(
        [
            "-s -w",
            f"-X k8s.io/component-base/version.gitVersion={KUBERNETES_VERSION}",
            f"-X k8s.io/component-base/version.gitMajor={major}",
            f"-X k8s.io/component-base/version.gitMinor={minor}",
            f"-X k8s.io/client-go/pkg/version.gitVersion={KUBERNETES_VERSION}",
        ]
    )
    _say(f"compiling {', '.join(KUBERNETES_BINARIES)} (first time: 5-10 minutes on 2 cores)")
    _run(
        [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(out) + "/"]
        + [f"k8s.io/kubernetes/cmd/{b}" for b in KUBERNETES_BINARIES],
        work,
        "go build kubernetes",
    )


def _build_module_main(
    go: str,
    out: Path,
    name: str,
    module: str,
    version: str,
    pkg: str,
    ldflags: str = "",
    tags: Sequence[str] = (),
) -> None:
    work = cache_root() / "src" / f"{name}-{version}"
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.mod").write_text(f"module wattsched.local/{name}\n\ngo 1.25\n")
    (work / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{pkg}"\n')
    _run([go, "get", f"{module}@{version}"], work, f"go get {module}@{version}")
    _run([go, "mod", "tidy"], work, f"go mod tidy ({name})")
    _say(f"compiling {name} {version}")
    tag_flags = ["-tags", ",".join(tags)] if tags else []
    output = ["-o", str(out / name)]
    _run(
        [go, "build", "-trimpath", *tag_flags, "-ldflags", f"-s -w {ldflags}", *output, pkg],
        work,
        f"go build {name}",
    )


def _helm_ldflags() -> str:
    """Without these, helm believes it talks to Kubernetes v1.20 and reports no version."""
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    return (
        " ".join(
            f"-X helm.sh/helm/v3/{pkg}.{var}={value}"
            for pkg in ("pkg/chartutil", "pkg/lint/rules")
            for var, value in (("k8sVersionMajor", major), ("k8sVersionMinor", minor))
        )
        + f" -X helm.sh/helm/v3/internal/version.version={HELM_VERSION}"
    )


def prometheus_release(module_version: str = PROMETHEUS_VERSION) -> str:
    """The Prometheus release a module version is: v0.316.0 -> 3.16.0, v0.305.2 -> 3.5.2."""
    match = re.fullmatch(r"v0\.(\d+)(\d\d)\.(\d+)", module_version)
    if match is None:
        raise BuildError(
            f"PROMETHEUS_VERSION {module_version!r} is not a Prometheus 3.x module version; "
            "those read v0.3XX.Y (v0.316.0 is Prometheus 3.16.0)"
        )
    major, minor, patch = match.groups()
    return f"{int(major)}.{int(minor)}.{int(patch)}"


def _prometheus_ldflags() -> str:
    """Without these, `prometheus --version` and /api/v1/status/buildinfo report no version."""
    return " ".join(
        f"-X github.com/prometheus/common/version.{var}={value}"
        for var, value in (
            ("Version", prometheus_release()),
            ("Branch", f"module-{PROMETHEUS_VERSION}"),
            ("BuildUser", "wattsched"),
        )
    )


def ensure_prometheus() -> Path:
    """Return the cached ``prometheus`` binary, building it if missing. Raises BuildError.

    Safe to call from several processes at once (a test run beside ``make controlplane``):
    the first builds under a file lock and the others wait for it, and the binary appears
    under its final name only once whole, so an interrupted build is never taken for a cached
    one."""
    binary = binaries().prometheus
    if binary.exists():
        return binary
    out = prometheus_bin_dir()
    out.mkdir(parents=True, exist_ok=True)
    with (out / ".build.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say("another process is building prometheus; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():  # built by whoever held the lock before
            return binary
        _say(f"building prometheus {prometheus_release()} (first time: about 4 minutes on 2 cores)")
        partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=out))
        try:
            _build_module_main(
                _go(),
                partial,
                "prometheus",
                "github.com/prometheus/prometheus",
                PROMETHEUS_VERSION,
                "github.com/prometheus/prometheus/cmd/prometheus",
                ldflags=_prometheus_ldflags(),
                tags=PROMETHEUS_BUILD_TAGS,
            )
            (partial / "prometheus").replace(binary)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return binary


def ensure_control_plane(*, with_helm: bool = False, with_prometheus: bool = False) -> Binaries:
    """Return the cached binaries, building whatever is missing. Raises BuildError."""
    bins = binaries()
    out = bin_dir()
    out.mkdir(parents=True, exist_ok=True)
    go = None
    kubernetes_bins = (
        bins.kube_apiserver,
        bins.kubectl,
        bins.kube_scheduler,
        bins.kube_controller_manager,
    )
    if not all(p.exists() for p in kubernetes_bins):
        go = go or _go()
        _build_kubernetes(go, out)
    if not bins.etcd.exists():
        go = go or _go()
        _build_module_main(
            go, out, "etcd", "go.etcd.io/etcd/server/v3", ETCD_VERSION, "go.etcd.io/etcd/server/v3"
        )
    if with_helm and not bins.helm.exists():
        go = go or _go()
        _build_module_main(
            go,
            out,
            "helm",
            "helm.sh/helm/v3",
            HELM_VERSION,
            "helm.sh/helm/v3/cmd/helm",
            ldflags=_helm_ldflags(),
        )
    if with_prometheus:
        ensure_prometheus()
    return bins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-helm", action="store_true", help="also build helm")
    parser.add_argument(
        "--without-prometheus",
        action="store_true",
        help="do not build prometheus (the measured-power tests need it)",
    )
    parser.add_argument("--print-dir", action="store_true", help="print the binary folder")
    args = parser.parse_args(argv)
    try:
        ensure_control_plane(with_helm=args.with_helm, with_prometheus=not args.without_prometheus)
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.print_dir:
        print(bin_dir())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

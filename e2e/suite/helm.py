"""The helm binary the project builds (e2e.providers.build), pointed at the repository's chart.

Helm keeps its caches, config and plugins in folders of its own here (HELM_*_HOME under a
temporary directory), so a test run neither reads nor writes the user's ~/.config/helm.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from e2e.providers.build import KUBERNETES_VERSION

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "wattsched"
EXAMPLES = REPO / "examples" / "ulsan"

JSON = dict[str, Any]


class HelmError(RuntimeError):
    def __init__(self, args: Iterable[str], returncode: int, stderr: str) -> None:
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"helm {' '.join(args)} failed (exit {returncode}):\n{stderr}")


def set_args(values: Mapping[str, Any]) -> list[str]:
    """`--set k=v` for each value (strings through --set-string, so "1" stays a string)."""
    argv: list[str] = []
    for key, value in values.items():
        if isinstance(value, str):
            argv += ["--set-string", f"{key}={value}"]
        elif isinstance(value, bool):
            argv += ["--set", f"{key}={str(value).lower()}"]
        else:
            argv += ["--set", f"{key}={value}"]
    return argv


@dataclass(frozen=True)
class Helm:
    binary: Path
    home: Path
    kubeconfig: Path | None = None
    context: str | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("CACHE", "CONFIG", "DATA"):
            folder = self.home / name.lower()
            folder.mkdir(parents=True, exist_ok=True)
            env[f"HELM_{name}_HOME"] = str(folder)
        env.pop("KUBECONFIG", None)
        return env

    def run(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.binary), *args]
        if self.kubeconfig is not None:
            argv.append(f"--kubeconfig={self.kubeconfig}")
        if self.context:
            argv.append(f"--kube-context={self.context}")
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=self.env(), check=False, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise HelmError(args, proc.returncode, proc.stderr)
        return proc

    def lint(self, values: Mapping[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(
            "lint", "--strict", str(CHART), f"--kube-version={KUBERNETES_VERSION}",
            *set_args(values or {}), check=False,
        )  # fmt: skip

    def template(
        self,
        release: str = "wattsched",
        namespace: str = "wattsched-system",
        values: Mapping[str, Any] | None = None,
        *,
        include_crds: bool = True,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        # A helm built without its release ldflags assumes Kubernetes v1.20 for `template`;
        # say which cluster the chart is rendered for.
        argv = [
            "template", release, str(CHART), f"--namespace={namespace}",
            f"--kube-version={KUBERNETES_VERSION}", *set_args(values or {}),
        ]  # fmt: skip
        if include_crds:
            argv.append("--include-crds")
        return self.run(*argv, check=check)

    def render(
        self,
        release: str = "wattsched",
        namespace: str = "wattsched-system",
        values: Mapping[str, Any] | None = None,
        *,
        include_crds: bool = True,
    ) -> list[JSON]:
        """The objects `helm template` renders, as dicts."""
        out = self.template(release, namespace, values, include_crds=include_crds).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]

    def install(
        self,
        release: str,
        namespace: str,
        values: Mapping[str, Any] | None = None,
        *extra: str,
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "install", release, str(CHART), f"--namespace={namespace}", *set_args(values or {}),
            *extra,
        )  # fmt: skip

    def upgrade(
        self,
        release: str,
        namespace: str,
        values: Mapping[str, Any] | None = None,
        *extra: str,
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "upgrade", release, str(CHART), f"--namespace={namespace}", "--reuse-values",
            *set_args(values or {}), *extra,
        )  # fmt: skip

    def uninstall(self, release: str, namespace: str, *, check: bool = True) -> None:
        self.run("uninstall", release, f"--namespace={namespace}", "--wait", check=check)

    def status(self, release: str, namespace: str) -> JSON:
        out = self.run("status", release, f"--namespace={namespace}", "-o", "json").stdout
        return dict(yaml.safe_load(out))


def all_features_on() -> dict[str, Any]:
    """Values that turn every optional object of the chart on."""
    return {
        "metrics.serviceMonitor.enabled": True,
        "grafanaDashboard.enabled": True,
        "priorityClasses.enabled": True,
        "podDisruptionBudget.enabled": True,
        "replicas": 3,
        "priorityClassName": "system-cluster-critical",
    }

"""kubectl for the e2e suite and the chart tests: one cluster, admin or a ServiceAccount.

The suite talks to clusters it did not start (kind, or whatever a kubeconfig names) as well as
to the local control plane, so everything here goes through kubectl and a kubeconfig rather
than through the local control plane's Python API.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

JSON = dict[str, Any]


class KubectlError(RuntimeError):
    """kubectl exited non-zero; carries its stderr, which is what a person needs to read."""

    def __init__(self, args: Iterable[str], returncode: int, stderr: str) -> None:
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"kubectl {' '.join(args)} failed (exit {returncode}):\n{stderr}")


@dataclass(frozen=True)
class Kubectl:
    """A kubectl binary bound to one kubeconfig (and, optionally, one of its contexts)."""

    binary: Path
    kubeconfig: Path
    context: str | None = None

    def base(self) -> list[str]:
        argv = [str(self.binary), f"--kubeconfig={self.kubeconfig}"]
        if self.context:
            argv.append(f"--context={self.context}")
        return argv

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*self.base(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise KubectlError(args, proc.returncode, proc.stderr)
        return proc

    def json(self, *args: str) -> JSON:
        result: JSON = json.loads(self.run(*args, "-o", "json").stdout)
        return result

    def apply(self, manifests: str | list[JSON], *args: str) -> str:
        text = manifests if isinstance(manifests, str) else yaml.safe_dump_all(manifests)
        return self.run("apply", "-f", "-", *args, stdin=text).stdout

    def exists(self, *args: str) -> bool:
        return self.run("get", *args, "--ignore-not-found", "-o", "name", check=True).stdout != ""

    def can_i(self, verb: str, resource: str, *args: str) -> bool:
        """`kubectl auth can-i` as this kubeconfig's user: True for yes, False for no."""
        proc = self.run("auth", "can-i", verb, resource, *args, check=False)
        answer = proc.stdout.strip()
        if answer not in ("yes", "no"):
            raise KubectlError(
                ("auth", "can-i", verb, resource, *args), proc.returncode, proc.stderr
            )
        return answer == "yes"

    def with_kubeconfig(self, kubeconfig: Path, context: str | None = None) -> Kubectl:
        return replace(self, kubeconfig=kubeconfig, context=context)

    def service_account_kubeconfig(
        self, path: Path, namespace: str, name: str, *, duration: str = "1h"
    ) -> Path:
        """A kubeconfig that acts as the ServiceAccount: a TokenRequest (`kubectl create
        token`) and this kubeconfig's cluster entry (server and CA), nothing of its user."""
        token = self.run("create", "token", name, "-n", namespace, f"--duration={duration}")
        view = self.json("config", "view", "--raw", "--minify", "--flatten")
        cluster = view["clusters"][0]
        user = f"system:serviceaccount:{namespace}:{name}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": user, "user": {"token": token.stdout.strip()}}],
            "contexts": [{"name": user, "context": {"cluster": cluster["name"], "user": user}}],
            "current-context": user,
        }
        path.write_text(json.dumps(config, indent=2) + "\n")
        path.chmod(0o600)
        return path


def wait_for(
    what: str, probe: Callable[[], T | None], *, timeout_seconds: float = 60, every: float = 0.5
) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout_seconds
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_seconds:.0f}s (last: {last!r})")
        time.sleep(every)


def force_delete_pods(kubectl: Kubectl, namespace: str, selector: str | None = None) -> None:
    """Pods on nodes with no kubelet never finish a graceful delete; skip the grace."""
    args = ["delete", "pods", "-n", namespace, "--grace-period=0", "--force", "--wait=false"]
    args += ["-l", selector] if selector else ["--all"]
    kubectl.run(*args, "--ignore-not-found", check=False)


def restricted_pod(
    name: str,
    *,
    scheduler_name: str,
    resources: dict[str, int],
    labels: dict[str, str] | None = None,
) -> JSON:
    """A pause pod asking for accelerator devices, meeting Pod Security "restricted"."""
    limits = {key: str(value) for key, value in resources.items()}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "e2e", **(labels or {})}},
        "spec": {
            "schedulerName": scheduler_name,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "pause",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {"limits": limits},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def condition(obj: JSON, kind: str) -> JSON | None:
    for cond in obj.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None

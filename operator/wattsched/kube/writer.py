"""Writes to the API, one method per kind of write, each returning what the caller must know.

Binding answers say whether the bind definitely failed (forget the assumption) or merely got no
verdict (keep it: DESIGN.md §3); eviction answers say whether a PodDisruptionBudget blocked it.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wattsched.api.models import GROUP, VERSION
from wattsched.domain import PodKey
from wattsched.kube.client import (
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    KubeApiError,
    KubeClient,
    KubeUnavailable,
)

log = logging.getLogger(__name__)

COMPONENT = "wattsched"
CLUSTER_EVENTS_NAMESPACE = "default"  # where Events about cluster-scoped objects go
BIND_TIMEOUT_SECONDS = 5.0


class BindOutcome(enum.Enum):
    BOUND = "bound"
    REJECTED = "rejected"  # a definite no: 404 gone, 409 bound elsewhere, 422 invalid, ...
    UNKNOWN = "unknown"  # a timeout or a 5xx: the bind may have happened


class EvictOutcome(enum.Enum):
    EVICTED = "evicted"
    GONE = "gone"
    BLOCKED = "blocked"  # 429: a PodDisruptionBudget does not allow it now
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """What an Event is about."""

    kind: str
    name: str
    namespace: str = ""
    uid: str = ""
    api_version: str = "v1"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pod_path(key: PodKey, suffix: str = "") -> str:
    return f"/api/v1/namespaces/{key[0]}/pods/{key[1]}{suffix}"


class KubeWriter:
    def __init__(self, client: KubeClient, identity: str) -> None:
        self.client = client
        self.identity = identity

    async def bind(
        self, key: PodKey, uid: str, node: str, timeout_seconds: float = BIND_TIMEOUT_SECONDS
    ) -> tuple[BindOutcome, str]:
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": key[1], "namespace": key[0], "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            await self.client.request(
                "POST", _pod_path(key, "/binding"), body=body, timeout_seconds=timeout_seconds
            )
        except KubeUnavailable as err:
            return BindOutcome.UNKNOWN, str(err)
        except KubeApiError as err:
            if err.transient:
                return BindOutcome.UNKNOWN, str(err)
            return BindOutcome.REJECTED, str(err)
        return BindOutcome.BOUND, ""

    async def evict(self, key: PodKey, uid: str) -> tuple[EvictOutcome, str]:
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": key[1], "namespace": key[0]},
            "deleteOptions": {"preconditions": {"uid": uid}} if uid else {},
        }
        try:
            await self.client.request("POST", _pod_path(key, "/eviction"), body=body)
        except KubeUnavailable as err:
            return EvictOutcome.FAILED, str(err)
        except KubeApiError as err:
            if err.status == 404:
                return EvictOutcome.GONE, str(err)
            if err.status == 429:
                return EvictOutcome.BLOCKED, err.message
            return EvictOutcome.FAILED, str(err)
        return EvictOutcome.EVICTED, ""

    async def pod_condition(
        self, key: PodKey, type_: str, status: str, reason: str, message: str
    ) -> bool:
        """Set one condition on the pod through pods/status; False when it could not."""
        condition = {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": _now(),
            "lastProbeTime": None,
        }
        body = {"status": {"conditions": [condition]}}
        try:
            await self.client.request(
                "PATCH", _pod_path(key, "/status"), body=body, content_type=STRATEGIC_MERGE_PATCH
            )
        except (KubeApiError, KubeUnavailable) as err:
            log.debug("could not set %s on pod %s/%s: %s", type_, key[0], key[1], err)
            return False
        return True

    async def event(self, about: ObjectRef, type_: str, reason: str, message: str) -> None:
        """A core/v1 Event, as `kubectl describe` and `kubectl get events` show them."""
        namespace = about.namespace or CLUSTER_EVENTS_NAMESPACE
        now = _now()
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{about.name}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": about.api_version,
                "kind": about.kind,
                "name": about.name,
                "namespace": about.namespace or None,
                "uid": about.uid or None,
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.identity,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.client.request("POST", f"/api/v1/namespaces/{namespace}/events", body=body)
        except (KubeApiError, KubeUnavailable) as err:
            log.debug("could not post event %s on %s %s: %s", reason, about.kind, about.name, err)

    async def custom_status(self, plural: str, name: str, status: dict[str, Any]) -> bool:
        """Merge-patch the status subresource of a pool or a budget."""
        path = f"/apis/{GROUP}/{VERSION}/{plural}/{name}/status"
        try:
            await self.client.request(
                "PATCH", path, body={"status": status}, content_type=MERGE_PATCH
            )
        except (KubeApiError, KubeUnavailable) as err:
            log.warning("could not patch the status of %s %s: %s", plural, name, err)
            return False
        return True

"""kopf handlers: each translates one watch event into the cache, and returns.

Only `@kopf.on.event` handlers: they observe silently, so kopf never patches its progress or
diff-base annotations onto pods (RBAC does not allow it, and it would double the writes).
No decision is made here; the scheduling loop makes them all.
"""

from __future__ import annotations

from typing import Any

import kopf

from wattsched.api.models import GROUP, VERSION
from wattsched.cluster.cache import ClusterCache
from wattsched.kube.client import Connection


def operator_settings() -> kopf.OperatorSettings:
    """kopf as a plain watcher: standalone, no scanning of CRDs or namespaces, no Events."""
    settings = kopf.OperatorSettings()
    settings.peering.standalone = True  # leadership is our Lease, not kopf's peering CRDs
    settings.scanning.disabled = True  # watching CRDs and namespaces needs RBAC we do not have
    settings.posting.enabled = False  # our Events are written by kube/, on purpose
    settings.watching.connect_timeout = 10
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    return settings


def build_registry(cache: ClusterCache, connection: Connection) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        token = connection.token()
        return kopf.ConnectionInfo(
            server=connection.server,
            ca_path=connection.ca_path,
            insecure=connection.insecure,
            certificate_path=connection.cert_path,
            private_key_path=connection.key_path,
            scheme="Bearer" if token else None,
            token=token,
        )

    @kopf.on.event("v1", "nodes", registry=registry)
    async def node_event(event: kopf.RawEvent, **_: Any) -> None:
        cache.node_event(event["type"], event["object"])

    @kopf.on.event("v1", "pods", registry=registry)
    async def pod_event(event: kopf.RawEvent, **_: Any) -> None:
        cache.pod_event(event["type"], event["object"])

    @kopf.on.event(GROUP, VERSION, "acceleratorpools", registry=registry)
    async def pool_event(event: kopf.RawEvent, **_: Any) -> None:
        cache.pool_event(event["type"], event["object"])

    @kopf.on.event(GROUP, VERSION, "powerbudgets", registry=registry)
    async def budget_event(event: kopf.RawEvent, **_: Any) -> None:
        cache.budget_event(event["type"], event["object"])

    return registry

"""A small asyncio client for the Kubernetes REST API, sharing one connection pool.

The kubernetes package's loaders find the credentials (in-cluster service account, else a
kubeconfig); requests go out through aiohttp (already there for kopf), so hundreds can be in
flight on one event loop without a thread each.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


class KubeUnavailable(Exception):
    """No answer: a timeout, a dropped connection. Not a verdict on the request."""


class KubeApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, method: str, path: str, status: int, body: Mapping[str, Any]) -> None:
        self.status = status
        self.reason = str(body.get("reason", ""))
        self.message = str(body.get("message", ""))
        self.body = body
        super().__init__(f"{method} {path}: {status} {self.reason}: {self.message}")

    @property
    def transient(self) -> bool:
        """5xx and 429 say "not now", not "no"."""
        return self.status >= 500 or self.status == 429


@dataclass(frozen=True)
class Connection:
    """Where the API server is and how to prove who we are."""

    server: str
    ca_path: str | None
    cert_path: str | None
    key_path: str | None
    insecure: bool
    source: Any  # the kubernetes.client.Configuration, which refreshes rotating tokens

    def token(self) -> str | None:
        # kubernetes-client 35+ keeps a kubeconfig or in-cluster token under "BearerToken";
        # older releases under "authorization". Either way it may carry the "Bearer " prefix.
        header = self.source.get_api_key_with_prefix(
            "BearerToken"
        ) or self.source.get_api_key_with_prefix("authorization")
        if not header:
            return None
        return str(header).removeprefix("Bearer ").strip()

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https"):
            return False
        context = ssl.create_default_context(cafile=self.ca_path)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_path and self.key_path:
            context.load_cert_chain(self.cert_path, self.key_path)
        return context


def load_connection(kubeconfig: str | None) -> Connection:
    """--kubeconfig if given; else in-cluster; else $KUBECONFIG or ~/.kube/config."""
    from kubernetes import client, config

    configuration = client.Configuration()
    if kubeconfig:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    else:
        try:
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except config.ConfigException:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=os.environ.get("KUBECONFIG") or None,
                client_configuration=configuration,
            )
    return Connection(
        server=str(configuration.host).rstrip("/"),
        ca_path=configuration.ssl_ca_cert,
        cert_path=configuration.cert_file,
        key_path=configuration.key_file,
        insecure=not configuration.verify_ssl,
        source=configuration,
    )


class KubeClient:
    def __init__(self, connection: Connection, *, max_connections: int = 64) -> None:
        self.connection = connection
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                ssl=self.connection.ssl_context(), limit=self._max_connections
            )
            self._session = aiohttp.ClientSession(connector=connector, json_serialize=json.dumps)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        query: Mapping[str, str | int] | None = None,
        timeout_seconds: float = 10.0,
    ) -> Any:
        """The decoded JSON answer; KubeApiError on an error status, KubeUnavailable on none."""
        headers = {"Accept": accept}
        token = self.connection.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body)
        url = f"{self.connection.server}{path}"
        try:
            async with self._open().request(
                method,
                url,
                data=data,
                headers=headers,
                params=dict(query or {}),
                timeout=aiohttp.ClientTimeout(total=timeout_seconds),
            ) as response:
                text = await response.text()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise KubeUnavailable(f"{method} {path}: {type(err).__name__}: {err}") from err
        try:
            decoded = json.loads(text) if text else {}
        except ValueError:
            decoded = {"message": text[:500]}
        if status >= 400:
            raise KubeApiError(method, path, status, decoded if isinstance(decoded, dict) else {})
        return decoded

    async def list_uids(self, path: str) -> list[str]:
        """Every object's uid, paging through a metadata-only LIST (cheap even for 10,000 pods)."""
        uids: list[str] = []
        token = ""
        while True:
            query: dict[str, str | int] = {"limit": 1000}
            if token:
                query["continue"] = token
            page = await self.request("GET", path, accept=METADATA_LIST, query=query,
                                      timeout_seconds=60)  # fmt: skip
            uids.extend(str(item["metadata"]["uid"]) for item in page.get("items") or ())
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return uids

"""A small JSON client for the Kubernetes API, for the test machinery that talks to it in bulk.

The fake kubelet and the fleet command create, patch and watch thousands of objects. The
generated ``kubernetes`` client turns every response into typed models, which costs more than
the request itself at that volume, and it cannot interrupt a blocking watch. This client takes
its connection settings (server, CA, client certificate, token) from a ``kubernetes`` ApiClient
or a kubeconfig, and speaks plain dicts over a thread-safe urllib3 pool.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

JSON = dict[str, Any]
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


class KubeError(RuntimeError):
    """The API server answered with an error status."""

    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        self.status = status
        try:
            message = str(json.loads(body).get("message", ""))
        except ValueError:
            message = body.decode(errors="replace")[:500]
        self.message = message
        super().__init__(f"{method} {path}: HTTP {status}: {message}")


def api_client_for(source: Any) -> Any:
    """A ``kubernetes.client.ApiClient`` from an ApiClient (returned as is) or a kubeconfig."""
    from kubernetes import client, config

    if isinstance(source, client.ApiClient):
        return source
    return config.new_client_from_config(config_file=str(Path(source)))  # type: ignore[no-untyped-call]


class KubeREST:
    """Plain-JSON requests with the credentials of a ``kubernetes`` ApiClient or kubeconfig."""

    def __init__(self, source: Any, *, max_connections: int = 32) -> None:
        api_client = api_client_for(source)
        self.api_client = api_client
        cfg = api_client.configuration
        self.host = str(cfg.host).rstrip("/")
        self._configuration = cfg
        self.pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=max_connections,
            cert_reqs="CERT_REQUIRED" if cfg.verify_ssl else "CERT_NONE",
            ca_certs=cfg.ssl_ca_cert,
            cert_file=cfg.cert_file,
            key_file=cfg.key_file,
            retries=False,
        )
        self._lock = threading.Lock()

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "wattsched-e2e"}
        for setting in self._configuration.auth_settings().values():  # a bearer token, if any
            if setting.get("in") == "header" and setting.get("value"):
                headers[str(setting["key"]).title()] = str(setting["value"])
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        url = self.host + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        return url

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout_seconds: float = 30.0,
    ) -> JSON:
        data = json.dumps(body).encode() if body is not None else None
        response = self.pool.request(
            method,
            self.url(path, query),
            body=data,
            headers=self._headers(content_type if data is not None else None),
            timeout=urllib3.Timeout(total=timeout_seconds),
        )
        if response.status >= 400:
            raise KubeError(method, path, response.status, response.data)
        return json.loads(response.data) if response.data else {}

    def get(self, path: str, **query: Any) -> JSON:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: Any) -> JSON:
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: Any, content_type: str = STRATEGIC_MERGE) -> JSON:
        return self.request("PATCH", path, body=body, content_type=content_type)

    def delete(self, path: str, body: Any = None, **query: Any) -> JSON:
        return self.request("DELETE", path, body=body, query=query)

    def list_all(self, path: str, *, page_size: int = 500, **query: Any) -> tuple[list[JSON], str]:
        """Every item of a collection (paged) and the resourceVersion to watch from."""
        items: list[JSON] = []
        token: str | None = None
        while True:
            page = self.get(path, limit=page_size, **{"continue": token}, **query)
            items.extend(page.get("items", []))
            token = page.get("metadata", {}).get("continue") or None
            if token is None:
                return items, str(page["metadata"]["resourceVersion"])

    def watch(self, path: str, resource_version: str, **query: Any) -> Watch:
        response = self.pool.request(
            "GET",
            self.url(
                path,
                {
                    "watch": "true",
                    "resourceVersion": resource_version,
                    "allowWatchBookmarks": "true",
                    **query,
                },
            ),
            headers=self._headers(),
            preload_content=False,
            timeout=urllib3.Timeout(connect=10.0, read=None),
        )
        if response.status >= 400:
            body = response.read()
            response.release_conn()
            raise KubeError("WATCH", path, response.status, body)
        return Watch(response)


class Watch:
    """The events of one watch request; ``close()`` from another thread ends the iteration."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response

    def __iter__(self) -> Iterator[JSON]:
        try:
            for line in self._response:
                if line.strip():
                    yield json.loads(line)
        except (urllib3.exceptions.HTTPError, OSError, ValueError, AttributeError):
            return  # closed under us, or the connection broke: the caller re-watches

    def close(self) -> None:
        response = self._response
        shutdown = getattr(response, "shutdown", None)
        try:
            if shutdown is not None:
                shutdown()  # urllib3 >= 2.3: unblocks a read in progress in another thread
            response.close()
        except Exception:  # closing a half-dead socket may fail any way
            pass


def object_path(api_version: str, plural: str, name: str = "", namespace: str = "") -> str:
    """``/api/v1/namespaces/ns/pods/name`` and friends."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{quote(namespace)}"
    base += f"/{plural}"
    if name:
        base += f"/{quote(name)}"
    return base

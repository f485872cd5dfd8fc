"""Prometheus' HTTP API, as little of it as wattsched needs: one instant query, with a timeout.

Errors come back as `TelemetryError` with what failed and where, never as a stack trace in the
operator's log: the caller counts them and treats the pool's nodes as having no reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

DEFAULT_TIMEOUT_SECONDS = 5.0


class TelemetryError(Exception):
    pass


class PrometheusClient:
    def __init__(self, url: str, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(
                f"Prometheus URL {url!r} must start with http:// or https://, "
                "e.g. http://prometheus-operated.monitoring:9090"
            )
        self.url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def query(self, promql: str, at_seconds: float | None = None) -> Mapping[str, Any]:
        """The JSON answer of /api/v1/query, or TelemetryError."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        form = {"query": promql}
        if at_seconds is not None:
            form["time"] = f"{at_seconds:.3f}"
        try:
            async with self._session.post(f"{self.url}/api/v1/query", data=form) as response:
                body: Mapping[str, Any] = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            raise TelemetryError(
                f"query to {self.url} failed: {err or type(err).__name__}"
            ) from err
        if response.status != 200 or body.get("status") != "success":
            raise TelemetryError(
                f"query to {self.url} answered {response.status}: "
                f"{body.get('errorType', '')} {body.get('error', '')}".strip()
            )
        return body

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

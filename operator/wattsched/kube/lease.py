"""Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it.

The holder renews every `retry_period`; it counts itself leader only until `renew_deadline`
after the start of its last successful renewal, which is shorter than the lease duration, so a
leader that cannot renew stops binding before any standby may take the lease over. A standby
measures expiry on its own monotonic clock from when it last saw the lease change, so clock skew
between machines does not matter.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from wattsched.kube.client import Connection, KubeApiError, KubeClient, KubeUnavailable

log = logging.getLogger(__name__)


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration_seconds: float = 15.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration_seconds = lease_duration_seconds
        self.renew_deadline_seconds = lease_duration_seconds * 2 / 3
        self.retry_period_seconds = max(0.2, lease_duration_seconds / 7.5)
        self._monotonic = monotonic
        self._valid_until = 0.0
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self.became_leader = asyncio.Event()
        self.on_change: Callable[[bool], None] = lambda leading: None
        self._was_leading = False
        self._stopping = threading.Event()
        self._main_loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    def is_leading(self, margin_seconds: float = 0.0) -> bool:
        """Leader now, and still for at least `margin_seconds` if no renewal succeeds."""
        return self._monotonic() + margin_seconds < self._valid_until

    async def run(self) -> None:
        """Acquire, then renew, until stopped; a standby keeps trying. Releases at the end."""
        while not self._stopping.is_set():
            started = self._monotonic()
            try:
                await self._try_acquire_or_renew(started)
            except (KubeApiError, KubeUnavailable) as err:
                log.warning("lease %s/%s: %s", self.namespace, self.name, err)
            self._notify()
            next_try = started + self.retry_period_seconds
            while not self._stopping.is_set() and self._monotonic() < next_try:
                await asyncio.sleep(min(0.1, max(0.0, next_try - self._monotonic())))
        await self.release()

    def _notify(self) -> None:
        """Announce a change of leadership on the main event loop (called on the lease's loop)."""
        leading = self.is_leading()
        if leading == self._was_leading:
            return
        self._was_leading = leading
        if self._main_loop is not None and self._thread is not None:
            self._main_loop.call_soon_threadsafe(self._announce, leading)
        else:
            self._announce(leading)

    def _announce(self, leading: bool) -> None:
        log.info(
            "%s leadership of lease %s/%s as %s",
            "acquired" if leading else "lost",
            self.namespace,
            self.name,
            self.identity,
        )
        if leading:
            self.became_leader.set()
        else:
            self.became_leader.clear()
        self.on_change(leading)

    def _spec(self, acquire_time: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": round(self.lease_duration_seconds),
            "acquireTime": acquire_time,
            "renewTime": _micro_time(),
            "leaseTransitions": transitions,
        }

    async def _try_acquire_or_renew(self, started: float) -> None:
        try:
            lease = await self.client.request("GET", self.path)
        except KubeApiError as err:
            if err.status != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(_micro_time(), 0),
            }
            collection = self.path.rsplit("/", 1)[0]
            try:
                await self.client.request("POST", collection, body=body)
            except KubeApiError as create_err:
                if create_err.status == 409:
                    return  # somebody else created it first; look again next time
                raise
            self._valid_until = started + self.renew_deadline_seconds
            return
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseTransitions"))
        if record != self._observed:
            self._observed, self._observed_at = record, started
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration_seconds)
        if holder and holder != self.identity and started < self._observed_at + duration:
            self._valid_until = 0.0
            return  # held by a live leader: stand by
        mine = holder == self.identity
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if mine else 1)
        acquire_time = str(spec.get("acquireTime") or "") if mine else ""
        body = dict(lease)
        body["spec"] = self._spec(acquire_time or _micro_time(), transitions)
        try:
            updated = await self.client.request("PUT", self.path, body=body)
        except KubeApiError as err:
            if err.status == 409:
                return  # another replica updated it in between: not ours this time
            raise
        new_spec = updated.get("spec") or {}
        self._observed = (
            new_spec.get("holderIdentity"),
            new_spec.get("renewTime"),
            new_spec.get("leaseTransitions"),
        )
        self._observed_at = started
        self._valid_until = started + self.renew_deadline_seconds

    # -- a thread of its own -------------------------------------------------------------------

    def start_in_thread(self, connection: Connection) -> None:
        """Renew from a thread with its own event loop and connections.

        The main event loop may be busy for a while (a burst of watch events, a big cycle);
        renewals must not wait for it, or a healthy leader would lose its lease.
        """
        self._main_loop = asyncio.get_running_loop()
        started = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            self.client = KubeClient(connection, max_connections=2)
            started.set()
            try:
                loop.run_until_complete(self.run())
            finally:
                loop.run_until_complete(self.client.close())
                loop.close()

        self._thread = threading.Thread(target=main, name="lease", daemon=True)
        self._thread.start()
        started.wait()

    async def stop_and_release(self) -> None:
        """Stop renewing and give the lease up (from the main event loop)."""
        self._valid_until = 0.0  # stop acting as leader before anything else
        self._stopping.set()
        if self._thread is None:
            await self.release()
            return
        await asyncio.to_thread(self._thread.join, 10)

    async def release(self) -> None:
        """Give the lease up at shutdown, so a standby takes over at once instead of waiting."""
        self._valid_until = 0.0  # stop acting as leader before telling anyone
        self._notify()
        if self._observed is None or self._observed[0] != self.identity:
            return
        try:
            lease = await self.client.request("GET", self.path, timeout_seconds=3)
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"] = {
                "leaseDurationSeconds": 1,
                "renewTime": _micro_time(),
                "acquireTime": _micro_time(),
                "leaseTransitions": (lease.get("spec") or {}).get("leaseTransitions") or 0,
            }
            await self.client.request("PUT", self.path, body=lease, timeout_seconds=3)
            log.info("released lease %s/%s", self.namespace, self.name)
        except (KubeApiError, KubeUnavailable) as err:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, err)

"""The cache: the latest translation of every watched object, and what changed since last asked.

kopf handlers call the `*_event` methods (cheap: translate, compare, remember); the scheduling
loop, and only it, turns the cache into a `ClusterState` (`build_state`) and later feeds that
state what changed (`apply_changes`). Handlers and the loop run on one asyncio event loop, so
nothing here locks. Unchanged translations are dropped at the door: a pod's status flipping to
Running, or our own status patch coming back through the watch, wakes nobody.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Literal

from wattsched.domain import Node, PodKey
from wattsched.scheduling.state import ClusterState
from wattsched.translate import (
    JSON,
    BudgetSource,
    PoolSource,
    TranslatedPod,
    TranslationError,
    budget_from_object,
    creation_seconds,
    node_from_object,
    pod_from_object,
    pod_is_relevant,
    pool_from_object,
)

log = logging.getLogger(__name__)

Kind = Literal["nodes", "pods", "acceleratorpools", "powerbudgets"]
KINDS: tuple[Kind, ...] = ("nodes", "pods", "acceleratorpools", "powerbudgets")
# Orders pods created in the same second by when the watch first showed them (creation order
# for pods created while we watch); a million distinct values per second is plenty.
_ORDER_SLOTS = 1_000_000


class ClusterCache:
    def __init__(self, scheduler_name: str) -> None:
        self.scheduler_name = scheduler_name
        self.nodes: dict[str, Node] = {}
        self.pools: dict[str, PoolSource] = {}
        self.budgets: dict[str, BudgetSource] = {}
        self.pods: dict[PodKey, TranslatedPod] = {}
        # Kept beside `pods` as events arrive: the loop reads it several times a turn, and a
        # scan of every cached pod each time would cost more than the rare invalid pod.
        self._invalid_pods: dict[PodKey, tuple[str, str]] = {}
        self.invalid_objects: dict[str, str] = {}  # "kind/name" -> why it is ignored
        self._dirty: dict[Kind, set[str]] = {kind: set() for kind in KINDS if kind != "pods"}
        self._dirty_pods: set[PodKey] = set()
        self._order: dict[PodKey, int] = {}
        self._sequence = itertools.count()
        self.changed = asyncio.Event()  # set on every material change; the loop clears it
        # Start-up: the uids an initial LIST showed, per kind, not yet seen through the watch.
        self._expected: dict[Kind, set[str] | None] = {kind: None for kind in KINDS}
        self._seen_before_sync: set[str] | None = set()
        self.synced = asyncio.Event()

    # -- start-up sync -----------------------------------------------------------------------

    def expect(self, kind: Kind, uids: Iterable[str]) -> None:
        """The objects a LIST showed at start-up; the cache is synced once it has seen them all."""
        pending = set(uids)
        if self._seen_before_sync is not None:
            pending -= self._seen_before_sync
        self._expected[kind] = pending
        self._check_synced()

    def still_listed(self, kind: Kind, uids: Iterable[str]) -> None:
        """A later LIST: an expected object it no longer shows was deleted before the watch
        could show it, and will never come; waiting for it would keep us unready forever."""
        expected = self._expected[kind]
        if expected:
            expected.intersection_update(uids)
            self._check_synced()

    def missing(self) -> dict[str, int]:
        """Objects per kind still to come through the watch (None: not listed yet -> -1)."""
        return {kind: -1 if uids is None else len(uids) for kind, uids in self._expected.items()}

    def _saw(self, kind: Kind, obj: JSON) -> None:
        if self._seen_before_sync is None:
            return
        uid = str((obj.get("metadata") or {}).get("uid", ""))
        self._seen_before_sync.add(uid)
        expected = self._expected[kind]
        if expected is not None and uid in expected:
            expected.discard(uid)
            if not expected:
                self._check_synced()

    def _check_synced(self) -> None:
        if all(uids is not None and not uids for uids in self._expected.values()):
            self._seen_before_sync = None
            self.synced.set()

    # -- events (called by the kopf handlers) ------------------------------------------------

    def _touch(self, kind: Kind, name: str) -> None:
        self._dirty[kind].add(name)
        self.changed.set()

    def node_event(self, event_type: str | None, obj: JSON) -> None:
        self._saw("nodes", obj)
        name = str(obj["metadata"]["name"])
        if event_type == "DELETED":
            if self.nodes.pop(name, None) is not None:
                self._touch("nodes", name)
            return
        try:
            node = node_from_object(obj)
        except TranslationError as err:
            self._invalid("Node", name, str(err))
            return
        if self.nodes.get(name) != node:
            self.nodes[name] = node
            self._touch("nodes", name)

    def pool_event(self, event_type: str | None, obj: JSON) -> None:
        self._saw("acceleratorpools", obj)
        name = str(obj["metadata"]["name"])
        if event_type == "DELETED":
            if self.pools.pop(name, None) is not None:
                self._touch("acceleratorpools", name)
            return
        try:
            source = pool_from_object(obj)
        except TranslationError as err:
            self._invalid("AcceleratorPool", name, str(err))
            return
        old = self.pools.get(name)
        self.pools[name] = source  # always: it carries the status last observed
        if old is None or old.pool != source.pool or old.generation != source.generation:
            self._touch("acceleratorpools", name)

    def budget_event(self, event_type: str | None, obj: JSON) -> None:
        self._saw("powerbudgets", obj)
        name = str(obj["metadata"]["name"])
        if event_type == "DELETED":
            if self.budgets.pop(name, None) is not None:
                self._touch("powerbudgets", name)
            return
        try:
            source = budget_from_object(obj)
        except TranslationError as err:
            self._invalid("PowerBudget", name, str(err))
            return
        old = self.budgets.get(name)
        self.budgets[name] = source
        if old is None or not old.same_spec(source):
            self._touch("powerbudgets", name)

    def pod_event(self, event_type: str | None, obj: JSON) -> None:
        self._saw("pods", obj)
        meta = obj["metadata"]
        key: PodKey = (str(meta.get("namespace", "")), str(meta["name"]))
        if event_type == "DELETED" or not pod_is_relevant(obj, self.scheduler_name):
            if self.pods.pop(key, None) is not None:
                self._invalid_pods.pop(key, None)
                self._order.pop(key, None)
                self._dirty_pods.add(key)
                self.changed.set()
            return
        order = self._order.get(key)
        if order is None:
            order = creation_seconds(obj) * _ORDER_SLOTS + next(self._sequence) % _ORDER_SLOTS
            self._order[key] = order
        translated = pod_from_object(obj, self.scheduler_name, order)
        old = self.pods.get(key)
        self.pods[key] = translated
        if translated.invalid is None:
            self._invalid_pods.pop(key, None)
        else:
            self._invalid_pods[key] = (translated.invalid_reason, translated.invalid)
        if old is None or old.pod != translated.pod or old.invalid != translated.invalid:
            self._dirty_pods.add(key)
            self.changed.set()

    def _invalid(self, kind: str, name: str, message: str) -> None:
        if self.invalid_objects.get(f"{kind}/{name}") != message:
            log.warning("ignoring %s %s: %s", kind, name, message)
        self.invalid_objects[f"{kind}/{name}"] = message

    # -- the scheduling loop's side ----------------------------------------------------------

    def build_state(self, now: datetime) -> ClusterState:
        """A fresh ClusterState from everything the watch shows: the ledger rebuilt from scratch."""
        for dirty in self._dirty.values():
            dirty.clear()
        self._dirty_pods.clear()
        self.changed.clear()
        return ClusterState.from_objects(
            nodes=list(self.nodes.values()),
            pools=[source.pool for source in self.pools.values()],
            budgets=[source.at(now) for source in self.budgets.values()],
            pods=[t.pod for t in self.pods.values() if t.invalid is None],
            now_seconds=now.timestamp(),
        )

    def apply_changes(self, state: ClusterState, now: datetime) -> bool:
        """Feed the state what changed since the last call; True when anything did.

        Budgets are also re-resolved at `now`, so a scheduled limit takes effect at its instant
        without any event: the loop wakes for it (see `next_limit_change`).
        """
        self.changed.clear()
        changed = False
        for name in _drain(self._dirty["acceleratorpools"]):
            changed = True
            pool = self.pools.get(name)
            if pool is None:
                state.remove_pool(name)
            else:
                state.upsert_pool(pool.pool)
        dirty_budgets = _drain(self._dirty["powerbudgets"])
        for name in sorted(set(self.budgets) | set(state.budgets)):
            source = self.budgets.get(name)
            if source is None:
                if name in state.budgets:
                    state.remove_budget(name)
                    changed = True
                continue
            budget = source.at(now)
            if name in dirty_budgets or state.budgets.get(name) != budget:
                state.upsert_budget(budget)
                changed = True
        for name in _drain(self._dirty["nodes"]):
            changed = True
            node = self.nodes.get(name)
            if node is None:
                state.remove_node(name)
            else:
                state.upsert_node(node)
        dirty_pods = list(self._dirty_pods)
        self._dirty_pods.clear()
        for key in dirty_pods:
            changed = True
            translated = self.pods.get(key)
            if translated is None or translated.invalid is not None:
                state.remove_pod(key)
            else:
                state.upsert_pod(translated.pod)
        return changed

    def invalid_pods(self) -> Mapping[PodKey, tuple[str, str]]:
        """Pending pods the engine never sees, with (reason, message) for their condition."""
        return self._invalid_pods

    def next_limit_change(self, now: datetime) -> datetime | None:
        """The earliest scheduled limit change of any budget after `now`."""
        changes = [
            change[0]
            for source in self.budgets.values()
            if (change := source.spec.next_change(now)) is not None
        ]
        return min(changes, default=None)


def _drain(names: set[str]) -> list[str]:
    drained = sorted(names)
    names.clear()
    return drained

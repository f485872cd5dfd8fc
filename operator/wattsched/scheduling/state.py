"""ClusterState: the objects, their placements and the ledger; kube-scheduler's Cache.

The operator's cache and the simulator both write it; the scheduler's Reserve step assumes into
it. It is owned by one task (the scheduling loop, or the simulator's driver), so nothing here
locks. Pods live in two places: placed (bound by the API, or assumed by us and not yet confirmed)
and pending. Assume/forget follow kube-scheduler's protocol: a placement is counted the moment it
is decided, and only a definite failure gives it back, so two cycles can never book the same
device or watt while a bind is in flight.

What the queue needs to know about changes is kept here as plain facts it reads: revisions
(a pod or a gang changed), the room epoch (room was freed somewhere), room freed per domain, and
the log of pods that joined the pending set. Which pods are parked, and who is nominated where,
is the queue's own business (`queue.SchedulingQueue`).

One idea, a little over 400 lines: a third of it is the read-only views the engine's hot loops
read directly (usage per node, pods per node, placements), kept here so that no other module
ever holds a copy that could drift from the ledger.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Set

from wattsched.domain import Budget, Node, Pod, PodKey, Pool
from wattsched.power.ledger import (
    BudgetStatus,
    BudgetUsage,
    Ledger,
    PoolUsage,
    budget_figures,
    budgets_containing,
    node_entry,
    oldest_first,
    pools_selecting,
)
from wattsched.scheduling.changelog import ChangeLog
from wattsched.scheduling.measurements import MeasuredFigures, measured_figures

# Epochs are unique across every ClusterState, so a cache keyed by one can never be fooled by a
# different state that happens to have made the same number of changes.
_EPOCHS = itertools.count(1)


def pool_domain(pool: str | None) -> str:
    """The room domain of a pool's nodes (nodes of no pool share one): see `park_gang`."""
    return f"pool:{pool or ''}"


def budget_domain(budget: str) -> str:
    return f"budget:{budget}"


class ClusterState:
    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._pools: dict[str, Pool] = {}
        self._budgets: dict[str, Budget] = {}
        self._pools_oldest_first: list[Pool] = []
        self._budgets_by_name: list[Budget] = []
        self._pods: dict[PodKey, Pod] = {}
        self._placement: dict[PodKey, str] = {}
        self._assumed: set[PodKey] = set()
        self._pending: dict[PodKey, Pod] = {}
        self._evicting: set[PodKey] = set()
        self._gangs: dict[str, set[PodKey]] = {}
        # What the queue reads (`changelog`): pods that joined the pending set; pods upserted
        # or removed, whose parks no longer hold (the pod may fit now); and gangs that gained
        # or changed a member (it may be complete now) or lost their last one.
        # Measured power (DESIGN.md §2b): the caller's clock, the fresh readings (observed IT
        # watts per node), and when each placed pod was placed; figures computed on demand.
        self.now = 0.0  # the aging clock: recent pods age against it (`advance_to`)
        self._stamp = 0.0  # the placement clock: when a placement happens (`stamp`)
        self._observed: dict[str, int] = {}
        self._placed_at: dict[PodKey, float] = {}
        self._figures: MeasuredFigures | None = None
        self.joined: ChangeLog[Pod] = ChangeLog()
        self.changed_pods: ChangeLog[PodKey] = ChangeLog()
        self.changed_gangs: ChangeLog[str] = ChangeLog()
        # Keyed by node name whether or not the node exists: a pod may be watched before its node.
        self._node_usage: dict[str, dict[str, int]] = {}
        self._node_pods: dict[str, set[PodKey]] = {}
        self._node_pool: dict[str, Pool | None] = {}
        self._node_budgets: dict[str, tuple[str, ...]] = {}
        self.ledger = Ledger()
        self.topology_epoch = next(_EPOCHS)
        # Bumped whenever room may have been freed (a pod leaves, a node or budget changes):
        # within a cycle nodes only fill up, so a pod that fit nowhere fails again until then.
        self.room_epoch = 0
        self.identity = next(_EPOCHS)  # a new state: the queue starts afresh
        # Room freed per domain (a pool's nodes, a budget's nodes), for gangs: one completion
        # anywhere bumps `room_epoch`, but a gang denied whole can only fit again once room
        # comes back where its members could go (see `SchedulingQueue.park_gang`).
        self._node_domains: dict[str, tuple[str, ...]] = {}
        self._freed_in: dict[str, int] = {}

    @classmethod
    def from_objects(
        cls,
        nodes: Iterable[Node],
        pools: Iterable[Pool],
        budgets: Iterable[Budget],
        pods: Iterable[Pod],
        now_seconds: float = 0.0,
    ) -> ClusterState:
        """A fresh state as a restart builds it: from what the API shows, before any placement.

        Every bound pod is dated `now_seconds`: a restart cannot know when its pods started to
        draw, so each counts as recent (at its committed watts) for a window, the safe side.
        """
        state = cls()
        state.advance_to(now_seconds)
        for pool in pools:
            state.upsert_pool(pool)
        for budget in budgets:
            state.upsert_budget(budget)
        for node in nodes:
            state.upsert_node(node)
        for pod in pods:
            state.upsert_pod(pod)
        return state

    def _topology_changed(self) -> None:
        self.topology_epoch = next(_EPOCHS)
        self.room_epoch += 1

    # -- nodes, pools, budgets -------------------------------------------------------------------

    def upsert_node(self, node: Node) -> None:
        self._nodes[node.name] = node
        self._refresh_node(node.name)
        self._topology_changed()

    def remove_node(self, name: str) -> None:
        if self._nodes.pop(name, None) is None:
            return
        self.ledger.set_node(name, None)
        self.ledger.conflicts.pop(name, None)
        self._node_pool.pop(name, None)
        self._node_budgets.pop(name, None)
        self._node_domains.pop(name, None)
        self._topology_changed()

    def upsert_pool(self, pool: Pool) -> None:
        self._pools[pool.name] = pool
        self._pools_oldest_first = oldest_first(self._pools.values())
        self.ledger.ensure_pool(pool.name)
        self._refresh_all_nodes()

    def remove_pool(self, name: str) -> None:
        if self._pools.pop(name, None) is None:
            return
        self._pools_oldest_first = oldest_first(self._pools.values())
        self._refresh_all_nodes()
        del self.ledger.pools[name]

    def upsert_budget(self, budget: Budget) -> None:
        old = self._budgets.get(budget.name)
        self._budgets[budget.name] = budget
        self._budgets_by_name = sorted(self._budgets.values(), key=lambda b: b.name)
        self.ledger.ensure_budget(budget.name)
        if old is None or old.selector != budget.selector:
            self._refresh_all_nodes()
        else:
            # A new limit (a schedule step, an edit) moves no node: the ledger is untouched, but
            # cached fit decisions are stale.
            self._topology_changed()

    def remove_budget(self, name: str) -> None:
        if self._budgets.pop(name, None) is None:
            return
        self._budgets_by_name = sorted(self._budgets.values(), key=lambda b: b.name)
        self._refresh_all_nodes()
        del self.ledger.budgets[name]

    def _refresh_all_nodes(self) -> None:
        for name in sorted(self._nodes):
            self._refresh_node(name)
        self._topology_changed()

    def _refresh_node(self, name: str) -> None:
        node = self._nodes[name]
        selecting = pools_selecting(node, self._pools_oldest_first)
        if len(selecting) > 1:
            self.ledger.conflicts[name] = selecting
        else:
            self.ledger.conflicts.pop(name, None)
        pool = self._pools[selecting[0]] if selecting else None
        self._node_pool[name] = pool
        self._node_budgets[name] = budgets_containing(node, self._budgets_by_name)
        self._node_domains[name] = (
            pool_domain(pool.name if pool is not None else None),
            *(budget_domain(budget) for budget in self._node_budgets[name]),
        )
        self._refresh_node_usage(name)

    def _refresh_node_usage(self, name: str) -> None:
        node = self._nodes.get(name)
        if node is None:
            return
        entry = node_entry(
            node,
            self._node_pool[name],
            self._node_budgets[name],
            self._node_usage.get(name, {}),
            len(self._node_pods.get(name, ())),
        )
        self.ledger.set_node(name, entry)

    # -- pods --------------------------------------------------------------------------------------

    def upsert_pod(self, pod: Pod) -> None:
        """Record a live pod: bound when node_name is set, otherwise pending.

        A pod we assumed keeps its assumed node until the watch shows it bound: the event that
        arrives between our bind call and the API's answer must not give its room away.
        """
        key = pod.key
        assumed_node = self._placement.get(key) if key in self._assumed else None
        self._drop(key)
        self._pods[key] = pod
        keep = 2 * len(self._pods) + 1024
        self.changed_pods.append(key, keep)
        gang = pod.gang
        if gang is not None:
            self._gangs.setdefault(gang, set()).add(key)
            self.changed_gangs.append(gang, keep)
        if pod.node_name is not None:
            self._place(pod, pod.node_name)
        elif assumed_node is not None:
            self._place(pod, assumed_node)
            self._assumed.add(key)
        elif pod.managed:
            self._pending[key] = pod
            self._join(pod)

    def remove_pod(self, key: PodKey) -> None:
        pod = self._pods.get(key)
        self._drop(key)
        if pod is not None:
            keep = 2 * len(self._pods) + 1024
            self.changed_pods.append(key, keep)
            if pod.gang is not None and pod.gang not in self._gangs:
                self.changed_gangs.append(pod.gang, keep)  # its last member: the park goes

    def _drop(self, key: PodKey) -> None:
        pod = self._pods.pop(key, None)
        if pod is None:
            return
        self._unplace(pod)
        self._assumed.discard(key)
        self._pending.pop(key, None)
        self._evicting.discard(key)
        if pod.gang is not None:
            members = self._gangs[pod.gang]
            members.discard(key)
            if not members:
                del self._gangs[pod.gang]

    def assume(self, key: PodKey, node: str) -> None:
        """Reserve: count a pending pod on `node` now, before the bind is sent."""
        pod = self._pending.pop(key, None)
        if pod is None:
            raise ValueError(f"cannot assume pod {key[0]}/{key[1]}: it is not pending")
        self._place(pod, node)
        self._assumed.add(key)

    def forget(self, key: PodKey, room_freed: bool = True) -> None:
        """Unreserve: the bind definitely failed (or a gang was denied), so the pod queues again.

        A gang denied within the cycle that reserved it frees no room that was there before
        the cycle, hence `room_freed=False`: it must not wake every parked pod.
        """
        if key not in self._assumed:
            raise ValueError(f"cannot forget pod {key[0]}/{key[1]}: it is not assumed")
        pod = self._pods[key]
        self._unplace(pod, room_freed)
        self._assumed.discard(key)
        self._pending[key] = pod
        if room_freed:  # an in-cycle unreserve returns it to where the cycle's queue has it
            self._join(pod)

    def _join(self, pod: Pod) -> None:
        # The log only saves a scheduler a re-sort; past twice the queue's size, a full sort
        # costs no more than the merge would.
        self.joined.append(pod, 2 * len(self._pending) + 1024)

    def mark_evicting(self, key: PodKey) -> None:
        """An eviction was asked for: keep counting the pod until it is gone, but never again."""
        if key in self._placement:
            self._evicting.add(key)

    def clear_evicting(self, key: PodKey) -> None:
        """The eviction did not happen (a PodDisruptionBudget refused it): the pod is placed
        like any other again, so the next Shed or preemption may pick it anew."""
        self._evicting.discard(key)

    def _place(self, pod: Pod, node: str) -> None:
        self._placement[pod.key] = node
        # A pod bound before we saw it (a restart) counts as recent for a window: its draw may
        # not be in the data yet, and assuming so is the safe side.
        self._placed_at[pod.key] = max(self._stamp, self.now)
        usage = self._node_usage.setdefault(node, {})
        for resource, quantity in pod.requests.items():
            if quantity:
                usage[resource] = usage.get(resource, 0) + quantity
        self._node_pods.setdefault(node, set()).add(pod.key)
        self._refresh_node_usage(node)

    def _unplace(self, pod: Pod, room_freed: bool = True) -> None:
        node = self._placement.pop(pod.key, None)
        if node is None:
            return
        if self._placed_at.pop(pod.key, None) != max(self._stamp, self.now):
            # A pod placed at this very instant takes its recent watts along with its
            # committed ones: gains stay. An older one's draw is still in the data: they move.
            self._figures = None
        if room_freed:
            self.room_epoch += 1
            self.room_freed_on(node)
        usage = self._node_usage[node]
        for resource, quantity in pod.requests.items():
            left = usage.get(resource, 0) - quantity
            if left:
                usage[resource] = left
            else:
                usage.pop(resource, None)
        pods = self._node_pods[node]
        pods.discard(pod.key)
        if not pods:
            del self._node_pods[node]
            del self._node_usage[node]
        self._refresh_node_usage(node)

    # -- measured power -----------------------------------------------------------------------

    def advance_to(self, now_seconds: float) -> None:
        """The caller's clock (the engine has none of its own): recent pods age against it.
        Moving it may free room, so the operator moves it when telemetry ticks, not each turn."""
        self._stamp = max(self._stamp, now_seconds)
        if now_seconds != self.now:
            self.now = now_seconds
            self._measurements_moved()

    def stamp(self, now_seconds: float) -> None:
        """The instant placements from now on happen at; cheap, frees no room. A pod placed
        after the aging clock's instant counts as recent, the safe side."""
        self._stamp = now_seconds

    def set_readings(self, observed_it_watts: Mapping[str, int]) -> None:
        """Fresh readings only, per node: observed IT watts (devices at the window percentile
        plus the node's base watts). A node left out has no fresh reading: nameplate."""
        if observed_it_watts != self._observed:
            self._observed = dict(observed_it_watts)
            self._measurements_moved()

    def _measurements_moved(self) -> None:
        """New data, or recent pods aging into it, may free room in Measured budgets: pods
        parked for want of it (and gangs parked on those budgets) must look again; but only
        where a budget's gain grew, since elsewhere nothing that refused a pod has changed."""
        before = self._figures
        self._figures = None
        measured = [name for name, budget in self._budgets.items() if budget.measured]
        if not measured:
            return
        old = before.gain_it_watts if before is not None else None
        gains = self.measured_figures().gain_it_watts
        grew = [n for n in measured if old is None or gains.get(n, 0) > old.get(n, 0)]
        if grew:
            self.room_epoch += 1
            freed = self._freed_in
            for name in grew:
                domain = budget_domain(name)
                freed[domain] = freed.get(domain, 0) + 1

    def measured_figures(self) -> MeasuredFigures:
        if self._figures is None:
            self._figures = measured_figures(self, self._observed, self._placed_at, self.now)
        return self._figures

    # -- what the queue reads ------------------------------------------------------------------

    def room_freed_on(self, node: str) -> None:
        """Room came back on `node`: for gangs parked on the domains the node is in."""
        freed = self._freed_in
        for domain in self._node_domains.get(node, ()):
            freed[domain] = freed.get(domain, 0) + 1

    def freed_in(self, domain: str) -> int:
        """How often room has been freed in a domain (a pool's nodes, a budget's nodes)."""
        return self._freed_in.get(domain, 0)

    # -- read access -----------------------------------------------------------------------------

    @property
    def nodes(self) -> Mapping[str, Node]:
        return self._nodes

    @property
    def pools(self) -> Mapping[str, Pool]:
        return self._pools

    @property
    def budgets(self) -> Mapping[str, Budget]:
        return self._budgets

    @property
    def pods(self) -> Mapping[PodKey, Pod]:
        return self._pods

    def pending(self) -> list[Pod]:
        """The queue, unordered by design: ordering is the scheduler's QueueSort."""
        return list(self._pending.values())

    def pending_count(self) -> int:
        return len(self._pending)

    def is_pending(self, key: PodKey) -> bool:
        return key in self._pending

    def pending_pod(self, key: PodKey) -> Pod | None:
        return self._pending.get(key)

    @property
    def pending_by_key(self) -> Mapping[PodKey, Pod]:
        return self._pending

    @property
    def placement(self) -> Mapping[PodKey, str]:
        """Node of every bound or assumed pod."""
        return self._placement

    def is_assumed(self, key: PodKey) -> bool:
        return key in self._assumed

    def is_evicting(self, key: PodKey) -> bool:
        return key in self._evicting

    @property
    def evicting(self) -> frozenset[PodKey]:
        return frozenset(self._evicting)

    def node_of(self, key: PodKey) -> str | None:
        return self._placement.get(key)

    def placements(self) -> Iterator[tuple[Pod, str]]:
        """(pod, node) for every bound or assumed pod, in key order."""
        for key in sorted(self._placement):
            yield self._pods[key], self._placement[key]

    def pods_on(self, node: str) -> list[Pod]:
        return [self._pods[key] for key in sorted(self._node_pods.get(node, ()))]

    @property
    def usage_by_node(self) -> Mapping[str, Mapping[str, int]]:
        """Summed requests per node name, for the Filter's hot loop (no per-node call)."""
        return self._node_usage

    @property
    def pods_by_node(self) -> Mapping[str, Set[PodKey]]:
        return self._node_pods

    def node_usage(self, node: str) -> Mapping[str, int]:
        """Summed requests of the pods placed on the node (no 'pods' key: count pods_on)."""
        return self._node_usage.get(node, {})

    def node_pod_count(self, node: str) -> int:
        return len(self._node_pods.get(node, ()))

    def node_pool(self, node: str) -> Pool | None:
        return self._node_pool.get(node)

    def node_budgets(self, node: str) -> tuple[str, ...]:
        return self._node_budgets.get(node, ())

    def node_watts(self, node: str) -> int:
        entry = self.ledger.nodes.get(node)
        return entry.watts if entry is not None else 0

    def gang_summary(self, gang: str) -> tuple[int, int]:
        """(members placed, the gang size its members declare): what Permit needs, unsorted."""
        placed = 0
        size = 1
        for key in self._gangs.get(gang, ()):
            if key in self._placement:
                placed += 1
            size = max(size, self._pods[key].gang_size)
        return placed, size

    def gang_sizes(self, gang: str) -> dict[int, list[PodKey]]:
        """The sizes the gang's members declare, each with the members that declare it: more
        than one entry means they disagree, and nobody can tell which size was meant."""
        sizes: dict[int, list[PodKey]] = {}
        for key in sorted(self._gangs.get(gang, ())):
            sizes.setdefault(self._pods[key].gang_size, []).append(key)
        return sizes

    def gang_members(self, gang: str) -> list[Pod]:
        return [self._pods[key] for key in sorted(self._gangs.get(gang, ()))]

    def pool_status(self, name: str) -> PoolUsage:
        return self.ledger.pools[name]

    def pool_conflicts(self) -> dict[str, tuple[str, ...]]:
        """Node -> every pool selecting it, winner (the oldest) first."""
        return dict(sorted(self.ledger.conflicts.items()))

    def conflicting_nodes(self, pool: str) -> list[str]:
        """Nodes this pool shares with another pool, for its Conflict condition."""
        return sorted(node for node, pools in self.ledger.conflicts.items() if pool in pools)

    def budget_usage(self, name: str) -> BudgetUsage:
        return self.ledger.budgets[name]

    def budget_status(self, name: str) -> BudgetStatus:
        budget = self._budgets[name]
        if not budget.measured:
            return budget_figures(budget, self.ledger.budgets[name])
        figures = self.measured_figures()
        return budget_figures(
            budget,
            self.ledger.budgets[name],
            gain_it_watts=figures.gain_it_watts.get(name, 0),
            measured_it_watts=figures.measured_it_watts.get(name, 0),
            stale_nodes=figures.stale_nodes.get(name, ()),
        )

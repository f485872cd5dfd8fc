"""The scheduling cycle, read top to bottom in `Scheduler._cycle`: one call per step.

Only the scheduling loop calls `schedule`, one cycle at a time, and it owns the ClusterState for
the duration: nothing here locks. A cycle is a pure function of the state and the queue (plus
caches that never change an answer, each documented by the step that owns it), so the same state
gives the same plan.

Where each step lives:
  1. QueueSort   queue.SchedulingQueue      5. Reserve     power_filter.LedgerReserve
  2. PreFilter   nominated, nodeclasses     6. Permit      permit.GangPermit
  3. Filter      fit, power_filter, filters 7. PostFilter  preemption.DefaultPreemption
  4. Score       fit, scoring               8. Shed        shedding
"""

from __future__ import annotations

import gc

from wattsched.domain import Binding, Plan, Pod, PodKey, Unschedulable
from wattsched.scheduling.config import SchedulerConfig
from wattsched.scheduling.filters import PodShape
from wattsched.scheduling.fit import NodeFit
from wattsched.scheduling.framework import Cycle, FilterPlugin, ReservePlugin
from wattsched.scheduling.nodeclasses import NodeClasses
from wattsched.scheduling.nominated import hold, hold_for_nominees
from wattsched.scheduling.permit import GangPermit
from wattsched.scheduling.power_filter import LedgerReserve, MeasuredPowerFit, PowerBudgetFit
from wattsched.scheduling.preemption import DefaultPreemption
from wattsched.scheduling.queue import QueueUnit, SchedulingQueue, Unit
from wattsched.scheduling.scoring import score_plugins
from wattsched.scheduling.shedding import shed
from wattsched.scheduling.state import ClusterState


class Scheduler:
    def __init__(self, config: SchedulerConfig | None = None) -> None:
        self.config = config or SchedulerConfig()
        self._queue = SchedulingQueue(self.config)
        self._classes = NodeClasses(self.config)
        # The registry: a new constraint is one Filter plus one Reserve, added here.
        self._filters: tuple[FilterPlugin, ...] = (PowerBudgetFit(), MeasuredPowerFit())
        self._reserves: tuple[ReservePlugin, ...] = (LedgerReserve(self._queue),)
        self._fit = NodeFit(self.config, self._classes, self._filters, score_plugins(self.config))
        self._permit = GangPermit(
            self.config, self._queue, self._classes, self._fit, self._reserve, self._reserves
        )
        self._post_filter = DefaultPreemption(self._queue, self._classes, self._fit)

    @property
    def queue(self) -> SchedulingQueue:
        """The pending pods' order, backoff and nominations (the loop reports preemptors)."""
        return self._queue

    def schedule(self, state: ClusterState, max_pods: int | None = None) -> Plan:
        """One cycle. Bindings come back already assumed; evicted pods come back marked evicting
        and stay in the state (and the ledger) until the caller removes them.

        The story, step by step:
        1. QueueSort   priority, then creation, then key; a gang is one unit (its best member).
        2. PreFilter   room held for nominated preemptors; static filters cached per pod shape.
        3. Filter      ready, schedulable, taints, selector/affinity, fail closed, resources,
                       and power in every budget containing the node (once per node class).
        4. Score       weighted plugins: device packing, gang topology, power headroom.
        5. Reserve     assume in the state, so the ledger already counts the binding.
        6. Permit      a gang is placed whole in this cycle or unreserved entirely.
        7. PostFilter  preemption for a pod that fits nowhere, with a nomination.
        8. Shed        over Shed budgets give back their fewest, lowest-priority victims.
        `max_pods` stops the cycle after that many bindings (a gang is never split).

        The cyclic garbage collector is paused for the cycle: a cycle makes no reference cycles
        (its objects go by reference counting), yet the ~100,000 objects a saturated cycle
        allocates (reasons, bindings, keys) set off full collections that walk the whole heap,
        every pod and node of the state; that was a third of a saturated cycle's time.
        """
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            return self._cycle(state, max_pods)
        finally:
            if paused:
                gc.enable()

    def _cycle(self, state: ClusterState, max_pods: int | None) -> Plan:
        nodes = len(state.nodes)
        cycle = Cycle(
            state, Plan(), nodes, self.config.feasible_nodes_to_find(nodes), set(state.evicting)
        )
        self._queue.begin_cycle(state)
        self._classes.refresh(state)
        self._fit.begin_cycle(cycle)
        self._post_filter.begin_cycle(cycle)

        units = self._queue.units(state)  # 1. QueueSort: parked pods sit this cycle out
        hold_for_nominees(cycle, self._queue)  # 2. PreFilter
        reached, parked = self._place(cycle, units, max_pods)  # 3.-7., unit by unit
        self._queue.park_all(state, parked)
        self._queue.reached(state, units, reached)
        if self.config.shedding:
            self._shed(cycle)  # 8. Shed
        return cycle.plan

    def _place(
        self, cycle: Cycle, units: list[Unit], max_pods: int | None
    ) -> tuple[int, list[PodKey]]:
        """Each unit through Filter, Score, Reserve (and Permit for a gang, PostFilter for a pod
        that fits nowhere). Returns how many units were reached, and the single pods to park.

        The common case at saturation is inlined: a twin (same shape, same requests) already
        failed this cycle and nothing has been freed since, so neither has this pod's chance.
        Such pods are parked together once the walk is done: nothing in a cycle frees room or
        reads the parking, so parking them late parks them the same.
        """
        state = cycle.state
        plan = cycle.plan
        bindings, unschedulable = plan.bindings, plan.unschedulable
        failed = self._fit.failed
        request_keys = self._fit.request_keys
        nominations = self._queue.nominations
        preemption = self.config.preemption
        pending = state.pending_by_key.get
        parked: list[PodKey] = []
        reached = 0
        for unit in units:
            if max_pods is not None and len(bindings) >= max_pods:
                break
            reached += 1
            if isinstance(unit, QueueUnit):
                if unit.members:  # an emptied unit was superseded by a newer one
                    self._permit.permit(cycle, unit)  # 6. Permit
                continue
            key = unit.key
            if pending(key) is not unit:
                continue  # left the queue (or was replaced) after the queue was built
            message = None
            if failed and (not nominations or key not in nominations):
                requests = request_keys.get(id(unit.requests)) or self._fit.requests_of(unit)
                shape = PodShape.of(unit)
                message = failed.get((shape, requests))
            if message is None:
                self._place_pod(cycle, unit)
                continue
            unschedulable.append(Unschedulable(key, message))
            if preemption and self._post_filter.worth_trying(unit, shape, requests):
                self._post_filter.post_filter(cycle, unit)  # 7. PostFilter
            parked.append(key)
        return reached, parked

    def _place_pod(self, cycle: Cycle, pod: Pod) -> None:
        state = cycle.state
        nomination = self._queue.nomination(pod.key) if self._queue.nominations else None
        if nomination is not None:
            # A nominee does not compete with the room it holds for itself.
            hold(cycle, pod, nomination.node, -1)
        node, message = self._fit.find_node(cycle, pod, {}, cacheable=nomination is None)
        if node is not None:
            self._reserve(state, pod, node)  # 5. Reserve
            cycle.placed(pod)
            cycle.plan.bindings.append(Binding(pod.key, node))
            return
        if nomination is not None:
            hold(cycle, pod, nomination.node, 1)
        cycle.plan.unschedulable.append(Unschedulable(pod.key, message))
        if self.config.preemption:
            self._post_filter.post_filter(cycle, pod)  # 7. PostFilter
        self._queue.park(state, pod.key)

    def _reserve(self, state: ClusterState, pod: Pod, node: str) -> None:
        """5. Reserve: every registered plugin counts the pod on the node before the bind."""
        for plugin in self._reserves:
            plugin.reserve(state, pod, node)

    def _shed(self, cycle: Cycle) -> None:
        """8. Shed: every over Shed budget gives back its fewest, lowest-priority victims."""
        for eviction in shed(cycle.state, cycle.going):
            cycle.state.mark_evicting(eviction.pod)
            cycle.plan.evictions.append(eviction)

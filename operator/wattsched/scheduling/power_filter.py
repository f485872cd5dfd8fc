"""Filters and Reserve for power (DESIGN.md §2, §2b): a pod must fit in every budget
containing its node, on nameplate (`admission: Committed`) or on the estimate (`Measured`).

The Filters ask the one power rule (`power.fits`, `power.measured.fits_measured`) per node
class. The ledger is the Reserve for both: assuming a pod moves its node's committed watts in
every budget at once, and under Measured the estimate moves by exactly the same watts
(`power.measured`), so the only new fact, when the pod was placed, is kept by ClusterState
wherever a placement happens (ours, or another scheduler's seen through the watch).
"""

from __future__ import annotations

from wattsched.domain import Pod
from wattsched.power.measured import fits_measured
from wattsched.power.watts import fits
from wattsched.scheduling.filters import measured_power_reason, power_reason
from wattsched.scheduling.framework import Cycle
from wattsched.scheduling.nodeclasses import NodeClass
from wattsched.scheduling.queue import SchedulingQueue
from wattsched.scheduling.state import ClusterState


class PowerBudgetFit:
    """A pod adding no watts passes even an over budget: refusing it would strand CPU work for
    no watt saved. Room held for nominated preemptors counts as used."""

    name = "PowerBudgetFit"

    def filter(self, cycle: Cycle, it_delta: int, node_class: NodeClass) -> bool:
        if it_delta <= 0:
            return True
        usage = cycle.state.ledger.budgets
        held = cycle.held.it_watts
        for name, pue, allocatable in node_class.power_limits:
            if not fits(usage[name].it_watts + held.get(name, 0), it_delta, pue, allocatable):
                return False
        return True

    def reason(self, cycle: Cycle, it_delta: int, node_class: NodeClass) -> str:
        reason = power_reason(
            node_class.budgets, cycle.state.ledger.budgets, cycle.held.it_watts, it_delta
        )
        assert reason is not None, "asked why a class that passes was refused"
        return reason


class MeasuredPowerFit:
    """Under `admission: Measured`: the estimate and the worst case must both have room."""

    name = "MeasuredPowerFit"

    def filter(self, cycle: Cycle, it_delta: int, node_class: NodeClass) -> bool:
        if it_delta <= 0 or not node_class.measured_limits:
            return True
        usage = cycle.state.ledger.budgets
        held = cycle.held.it_watts
        gains = cycle.state.measured_figures().gain_it_watts
        for name, pue, allocatable, over in node_class.measured_limits:
            it = usage[name].it_watts + held.get(name, 0)
            if not fits_measured(it, gains.get(name, 0), it_delta, pue, allocatable, over):
                return False
        return True

    def reason(self, cycle: Cycle, it_delta: int, node_class: NodeClass) -> str:
        reason = measured_power_reason(
            node_class.budgets,
            cycle.state.ledger.budgets,
            cycle.held.it_watts,
            cycle.state.measured_figures().gain_it_watts,
            it_delta,
        )
        assert reason is not None, "asked why a class that passes was refused"
        return reason


class LedgerReserve:
    """Reserve in the ledger: counted on its node from now on, for every budget and pool."""

    name = "LedgerReserve"

    def __init__(self, queue: SchedulingQueue) -> None:
        self._queue = queue

    def reserve(self, state: ClusterState, pod: Pod, node: str) -> None:
        state.assume(pod.key, node)
        self._queue.assumed(state, pod.key)

    def unreserve(self, state: ClusterState, pod: Pod) -> None:
        # Unreserved within the cycle that reserved it: no room that was there before the
        # cycle comes back, so parked pods stay parked.
        state.forget(pod.key, room_freed=False)

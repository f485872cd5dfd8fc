"""Filter and Reserve for power (DESIGN.md §2): a pod must fit in every budget containing its node.

The Filter asks `power.fits`, the one power rule, per node class; the ledger is the Reserve:
assuming a pod in ClusterState moves its node's watts in every budget at once.
"""

from __future__ import annotations

from wattsched.domain import Pod
from wattsched.power.watts import fits
from wattsched.scheduling.filters import power_reason
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

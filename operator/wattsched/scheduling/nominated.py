"""PreFilter: room held for nominated preemptors.

A preemptor is nominated to the node its victims leave (PostFilter, `preemption`). Until it
binds there, every cycle holds its devices on that node and its watts in that node's budgets
against everyone else, as kube-scheduler does for a NominatedNodeName; the nominee alone may use
them. The held room lives in the Cycle (`HeldRoom`) and is dropped with it: the nominations
themselves are the queue's.
"""

from __future__ import annotations

from wattsched.domain import Pod
from wattsched.power.watts import delta_watts
from wattsched.scheduling.filters import devices_requested
from wattsched.scheduling.framework import Cycle
from wattsched.scheduling.queue import SchedulingQueue


def hold_for_nominees(cycle: Cycle, queue: SchedulingQueue) -> None:
    """2. PreFilter: hold every nominee's room (the queue ended stale nominations already)."""
    nominations = queue.nominations
    for key in sorted(nominations):
        hold(cycle, cycle.state.pods[key], nominations[key].node, 1)


def hold(cycle: Cycle, pod: Pod, node: str, sign: int) -> None:
    """Hold (+1) or give back (-1) the pod's room on `node` and in the node's budgets."""
    held = cycle.held.nodes.setdefault(node, {})
    for resource, quantity in pod.requests.items():
        held[resource] = held.get(resource, 0) + sign * quantity
    held["pods"] = held.get("pods", 0) + sign
    state = cycle.state
    pool = state.node_pool(node)
    if pool is None:
        return
    delta = delta_watts(pool.profile, devices_requested(pod.requests, pool))
    it_watts = cycle.held.it_watts
    for budget in state.node_budgets(node):
        it_watts[budget] = it_watts.get(budget, 0) + sign * delta

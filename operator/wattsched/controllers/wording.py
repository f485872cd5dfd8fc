"""What wattsched tells people when it evicts: the words of conditions, Events and notes.

Kept apart from the loop that sends them, so the wording reads in one place and each message
can be checked on its own. Every message names the budget or the preemptor, the numbers that
made the decision, and the node, so an admin can tell why without reading the operator's log.
"""

from __future__ import annotations

from wattsched.api.units import format_power
from wattsched.domain import Pod, PodKey
from wattsched.power.ledger import BudgetStatus


def shed_eviction(
    budget: str, figures: BudgetStatus, priority: int, freed_watts: int, node: str
) -> str:
    """The DisruptionTarget condition and Event of a pod shed to restore `budget`."""
    counted = "estimated" if figures.estimated_watts is not None else "committed"
    current = figures.allocatable_watts - figures.headroom_watts
    return (
        f"evicted to bring PowerBudget {budget} within its limit: {counted} "
        f"{format_power(current)} exceeds allocatable {format_power(figures.allocatable_watts)} "
        f"by {format_power(-figures.headroom_watts)}; this pod (priority {priority}) frees "
        f"{format_power(freed_watts)} on node {node}"
    )


def preemption(preemptor: Pod | None, node: str, priority: int, freed_watts: int) -> str:
    """The DisruptionTarget condition and Event of a pod preempted for a higher one."""
    by = (
        f"{preemptor.namespace}/{preemptor.name} (priority {preemptor.priority})"
        if preemptor is not None
        else "a higher-priority pod"
    )
    return (
        f"preempted by {by} on node {node}: this pod has priority {priority} and frees "
        f"{format_power(freed_watts)}"
    )


def shed_summary(picked: list[tuple[PodKey, int]], figures: BudgetStatus) -> str:
    """The budget's Event (and status note) for one shed: who went, and why."""
    freed_total = sum(freed for _, freed in picked)
    names = ", ".join(f"{ns}/{name}" for (ns, name), _ in picked[:5])
    names += ", ..." if len(picked) > 5 else ""
    counted = "estimated" if figures.estimated_watts is not None else "committed"
    current = figures.allocatable_watts - figures.headroom_watts
    return (
        f"shedding {len(picked)} pod(s) ({names}) to free {format_power(freed_total)}: "
        f"{counted} {format_power(current)} exceeds allocatable "
        f"{format_power(figures.allocatable_watts)} (limit {format_power(figures.limit_watts)})"
    )


def shed_blocked(pod: PodKey, detail: str, retry_seconds: float) -> str:
    """The budget's note while a PodDisruptionBudget refuses a shed eviction."""
    return (
        f"eviction of {pod[0]}/{pod[1]} blocked by a PodDisruptionBudget ({detail}); "
        f"retrying every {retry_seconds:g}s"
    )

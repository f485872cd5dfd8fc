"""The status an AcceleratorPool or a PowerBudget should show (DESIGN.md §1), as a patch body.

Pure: the loop passes the ledger's figures and the status last observed, and gets back the
status to write. Conditions keep their lastTransitionTime while their status stays the same,
as metav1.Condition asks, so an unchanged world produces an identical status and no patch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from wattsched.api.budget import NextChange, PowerBudgetStatus
from wattsched.api.meta import Condition
from wattsched.api.pool import AcceleratorPoolStatus
from wattsched.api.units import format_power
from wattsched.power.ledger import BudgetStatus, PoolUsage
from wattsched.translate import JSON, BudgetSource, PoolSource

MAX_NODES_NAMED = 5


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(
    new: Sequence[tuple[str, str, str, str]], previous: JSON, generation: int, now: datetime
) -> list[Condition]:
    """(type, status, reason, message) -> Conditions, keeping unchanged transition times."""
    before: dict[str, Mapping[str, Any]] = {
        str(c.get("type")): c for c in previous.get("conditions") or () if isinstance(c, Mapping)
    }
    conditions = []
    for type_, status, reason, message in new:
        old = before.get(type_)
        moved = old is None or old.get("status") != status or not old.get("lastTransitionTime")
        conditions.append(
            Condition(
                type=type_,
                status=status,  # type: ignore[arg-type]
                reason=reason,
                message=message,
                last_transition_time=rfc3339(now) if moved else str(old["lastTransitionTime"]),  # type: ignore[index]
                observed_generation=generation,
            )
        )
    return conditions


def budget_status(
    source: BudgetSource,
    figures: BudgetStatus,
    now: datetime,
    shed_note: str | None = None,
) -> dict[str, Any]:
    """The status body of a PowerBudget from the ledger's figures at `now`."""
    limit, allocatable = figures.limit_watts, figures.allocatable_watts
    committed, headroom = figures.committed_watts, figures.headroom_watts
    reserve = source.spec.reserve_percent
    summary = (
        f"committed {format_power(committed)} of allocatable {format_power(allocatable)} "
        f"(limit {format_power(limit)} less {reserve}% reserve)"
    )
    estimated = figures.estimated_watts
    if estimated is not None:  # admission: Measured counts the estimate, not nameplate
        summary = (
            f"estimated {format_power(estimated)} of allocatable {format_power(allocatable)} "
            f"(committed {format_power(committed)} at nameplate; limit {format_power(limit)} "
            f"less {reserve}% reserve)"
        )
    if headroom >= 0:
        within = ("WithinLimit", "True", "WithinLimit", summary)
    elif source.spec.enforcement == "Shed":
        within = (
            "WithinLimit",
            "False",
            "Shedding",
            f"{summary}: over by {format_power(-headroom)}; evicting the lowest-priority "
            "wattsched pods until it is within",
        )
    else:
        within = (
            "WithinLimit",
            "False",
            "OverLimit",
            f"{summary}: over by {format_power(-headroom)}; admitting no new pods "
            "(enforcement Admit never evicts; set Shed to evict)",
        )
    if shed_note:
        within = (*within[:3], f"{within[3]}; {shed_note}")
    ready = (
        "Ready",
        "True",
        "Observed",
        f"limit {format_power(limit)} in force; {figures.nodes} nodes, {figures.pods} pods",
    )
    conditions = [ready, within]
    if estimated is not None:
        conditions.append(_telemetry_fresh(figures))
    change = source.spec.next_change(now)
    status = PowerBudgetStatus(
        observed_generation=source.generation,
        effective_limit_watts=limit,
        allocatable_watts=allocatable,
        committed_watts=committed,
        headroom_watts=headroom,
        nodes=figures.nodes,
        pods=figures.pods,
        next_change=(NextChange(at=rfc3339(change[0]), limit_watts=change[1]) if change else None),
        limit=format_power(limit),
        committed=format_power(committed),
        headroom=format_power(headroom),
        measured_watts=figures.measured_watts,
        estimated_watts=estimated,
        measured=format_power(figures.measured_watts or 0) if estimated is not None else None,
        estimated=format_power(estimated) if estimated is not None else None,
        conditions=_conditions(conditions, source.status, source.generation, now),
    )
    body = status.model_dump(by_alias=True, exclude_none=True)
    body["nextChange"] = body.get("nextChange")  # None clears it in a merge patch
    return body


_NAMED_STALE = 5


def _telemetry_fresh(figures: BudgetStatus) -> tuple[str, str, str, str]:
    """TelemetryFresh: which nodes count at nameplate for want of a fresh reading, and why."""
    stale = figures.stale_nodes
    if not stale:
        return ("TelemetryFresh", "True", "Fresh", "every node has a fresh power reading")
    shown = ", ".join(stale[:_NAMED_STALE]) + (
        f" and {len(stale) - _NAMED_STALE} more" if len(stale) > _NAMED_STALE else ""
    )
    return (
        "TelemetryFresh",
        "False",
        "StaleNodes",
        f"{len(stale)} of {figures.nodes} nodes have no fresh power reading ({shown}): they "
        "count at nameplate. Check that wattsched run has --prometheus-url, that the nodes' "
        "exporters run, and the pool's telemetry query and nodeLabel",
    )


def pool_status(
    source: PoolSource,
    usage: PoolUsage,
    conflicts: Mapping[str, tuple[str, ...]],
    now: datetime,
) -> dict[str, Any]:
    """The status body of an AcceleratorPool; `conflicts` maps its shared nodes to their pools."""
    name = source.pool.name
    ready = (
        "Ready",
        "True",
        "Observed",
        f"{usage.nodes} nodes ({usage.ready_nodes} ready), {usage.devices} devices, "
        f"{usage.allocated_devices} allocated",
    )
    if conflicts:
        others = sorted({pool for pools in conflicts.values() for pool in pools if pool != name})
        nodes = sorted(conflicts)
        named = ", ".join(nodes[:MAX_NODES_NAMED]) + (
            ", ..." if len(nodes) > MAX_NODES_NAMED else ""
        )
        won = sum(1 for pools in conflicts.values() if pools[0] == name)
        conflict = (
            "Conflict",
            "True",
            "OverlappingSelector",
            f"{len(nodes)} node(s) are also selected by {', '.join(others)} ({named}); "
            f"the older pool wins each node: this pool has {won} of them",
        )
    else:
        conflict = ("Conflict", "False", "NoOverlap", "no node is selected by another pool")
    status = AcceleratorPoolStatus(
        observed_generation=source.generation,
        nodes=usage.nodes,
        ready_nodes=usage.ready_nodes,
        devices=usage.devices,
        allocated_devices=usage.allocated_devices,
        committed_watts=usage.committed_watts,
        committed=format_power(usage.committed_watts),
        conditions=_conditions([ready, conflict], source.status, source.generation, now),
    )
    return status.model_dump(by_alias=True, exclude_none=True)


def differs(desired: Mapping[str, Any], observed: Mapping[str, Any]) -> bool:
    """Whether patching `desired` would change the status the API shows."""
    for key, value in desired.items():
        if value is None:
            if observed.get(key) is not None:
                return True
        elif observed.get(key) != value:
            return True
    return False

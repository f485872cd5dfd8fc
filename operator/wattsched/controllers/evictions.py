"""Step 5 of a turn, for evictions: say why on each pod and budget, then hand the job over.

Shed and preemption decide in the engine; here each eviction becomes words (`wording`), a
metric, and a job for the eviction workers, and each shed a note on its budget's status and a
Warning Event, so an admin sees who went, to restore what, and who gained.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from wattsched.cluster.status import rfc3339
from wattsched.controllers import wording
from wattsched.domain import Eviction, PodKey
from wattsched.metrics import Metrics
from wattsched.power.watts import facility_watts
from wattsched.scheduling.queue import Nomination
from wattsched.scheduling.state import ClusterState
from wattsched.scheduling.victims import freed_it_watts

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]
MakeEviction = Callable[[Eviction, str, str, str, str], Job]  # eviction, uid, reasons, message
BudgetReport = Callable[[str, str, str], None]  # budget, reason, message


class EvictionDesk:
    def __init__(
        self,
        metrics: Metrics,
        jobs: asyncio.Queue[Job],
        shed_notes: dict[str, str],
        make_eviction: MakeEviction,
        report: BudgetReport,
    ) -> None:
        self._metrics = metrics
        self._jobs = jobs
        self._shed_notes = shed_notes
        self._make_eviction = make_eviction
        self._report = report

    def dispatch(
        self,
        state: ClusterState,
        evictions: list[Eviction],
        now: datetime,
        nominations: Mapping[PodKey, Nomination],
    ) -> None:
        by_budget: dict[str, list[tuple[Eviction, int]]] = {}
        for eviction in evictions:
            pod = state.pods.get(eviction.pod)
            if pod is None:
                continue
            self._metrics.evictions.labels(
                budget=eviction.budget or "", reason=eviction.reason
            ).inc()
            freed = freed_it_watts(state, pod, eviction.node)
            if eviction.budget is not None:
                if eviction.budget in state.budgets:
                    freed = facility_watts(freed, state.budgets[eviction.budget].pue_milli)
                by_budget.setdefault(eviction.budget, []).append((eviction, freed))
                figures = state.budget_status(eviction.budget)
                message = wording.shed_eviction(
                    eviction.budget, figures, pod.priority, freed, eviction.node
                )
                reason, condition_reason = "Shed", "PowerBudgetShed"
            else:
                preemptor = next(
                    (key for key, n in nominations.items() if eviction.pod in n.victims), None
                )
                preemptor_pod = state.pods.get(preemptor) if preemptor else None
                message = wording.preemption(preemptor_pod, eviction.node, pod.priority, freed)
                reason, condition_reason = "Preempted", "PreemptionByScheduler"
            self._jobs.put_nowait(
                self._make_eviction(eviction, pod.uid, reason, condition_reason, message)
            )
        for budget_name, picked in by_budget.items():
            figures = state.budget_status(budget_name)
            message = wording.shed_summary([(e.pod, freed) for e, freed in picked], figures)
            self._shed_notes[budget_name] = f"last shed at {rfc3339(now)}: {message}"
            log.info("PowerBudget %s: %s", budget_name, message)
            self._report(budget_name, "Shed", message)

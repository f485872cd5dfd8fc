"""AcceleratorPool and PowerBudget objects -> the domain's Pool and Budget (and their sources).

One translation of the API models, shared by the operator's cache and the simulator, so the
two can never read a pool or a budget differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from pydantic import ValidationError

from wattsched.api.budget import PowerBudgetSpec
from wattsched.api.meta import LabelSelector as ApiLabelSelector
from wattsched.api.pool import AcceleratorPoolSpec
from wattsched.domain import (
    Budget,
    LabelSelector,
    Pool,
    PowerProfile,
    SelectorRequirement,
)
from wattsched.translate.common import (
    JSON,
    TranslationError,
    creation_seconds,
    meta_of,
)


def _spec_error(kind: str, name: str, err: ValidationError) -> TranslationError:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in e['loc']) or 'spec'}: {e['msg']}" for e in err.errors()
    )
    return TranslationError(f"{kind} {name} has an invalid spec: {problems}")


# -- validated API models -> engine ---------------------------------------------------------------
# The operator (from watch events) and the simulator (from manifest files) both come here, so
# a pool or a budget means the same thing to the engine wherever it was read.


def engine_selector(selector: ApiLabelSelector) -> LabelSelector:
    return LabelSelector(
        match_labels=MappingProxyType(dict(selector.match_labels or {})),
        match_expressions=tuple(
            SelectorRequirement(req.key, req.operator, tuple(req.values or ()))
            for req in selector.match_expressions or ()
        ),
    )


# The exporters a site already runs, by vendor (DESIGN.md §2b): the PromQL giving watts per
# device, and the label that names the node. AWS Neuron publishes no power metric: its pools,
# and those of vendors without a known exporter, stay on nameplate unless spec.telemetry says.
VENDOR_TELEMETRY: dict[str, tuple[str, str]] = {
    "nvidia": ("DCGM_FI_DEV_POWER_USAGE", "Hostname"),
    "rebellions": ("RBLN_DEVICE_STATUS:CARD_POWER", "hostname"),
    "furiosa": ('furiosa_npu_hw_power{label="rms"}', "hostname"),
}


def engine_pool(name: str, spec: AcceleratorPoolSpec, created_order: int) -> Pool:
    if spec.telemetry is not None:
        query: str | None = spec.telemetry.query
        node_label = spec.telemetry.node_label
    else:
        query, node_label = VENDOR_TELEMETRY.get(spec.accelerator.vendor, (None, "Hostname"))
    return Pool(
        name=name,
        selector=engine_selector(spec.node_selector),
        resource_names=tuple(spec.accelerator.resource_names),
        profile=PowerProfile(
            device_watts=spec.power.device_watts,
            idle_device_watts=spec.power.idle_device_watts,
            node_base_watts=spec.power.node_base_watts,
        ),
        created_order=created_order,
        vendor=spec.accelerator.vendor,
        model=spec.accelerator.model,
        telemetry_query=query,
        telemetry_node_label=node_label,
    )


def engine_budget(
    name: str, spec: PowerBudgetSpec, limit_watts: int, selector: LabelSelector | None = None
) -> Budget:
    """The engine's Budget with `limit_watts` in force; `selector` spares a re-translation."""
    measured = spec.measured_settings
    return Budget(
        name=name,
        selector=selector if selector is not None else engine_selector(spec.node_selector),
        limit_watts=limit_watts,
        reserve_percent=spec.reserve_percent,
        pue_milli=spec.pue_milli,
        enforcement=spec.enforcement,
        admission=spec.admission,
        max_oversubscription_percent=measured.max_oversubscription_percent,
        window_seconds=measured.window_seconds,
        percentile=measured.percentile,
        stale_after_seconds=measured.stale_after_seconds,
    )


@dataclass(frozen=True, slots=True)
class PoolSource:
    """An AcceleratorPool as the cache keeps it: the engine's Pool plus what its status needs."""

    pool: Pool
    generation: int
    status: JSON  # as last observed, to patch only what differs
    uid: str = ""


def pool_from_object(obj: JSON) -> PoolSource:
    meta = meta_of(obj)
    name = str(meta["name"])
    try:
        spec = AcceleratorPoolSpec.model_validate(obj.get("spec") or {})
    except ValidationError as err:
        raise _spec_error("AcceleratorPool", name, err) from err
    pool = engine_pool(name, spec, created_order=creation_seconds(obj))
    return PoolSource(
        pool, int(meta.get("generation") or 0), obj.get("status") or {}, str(meta.get("uid", ""))
    )


@dataclass(frozen=True, slots=True)
class BudgetSource:
    """A PowerBudget as the cache keeps it: its spec (with the schedule) resolves at an instant."""

    name: str
    spec: PowerBudgetSpec
    selector: LabelSelector
    generation: int
    status: JSON
    uid: str = ""

    def at(self, now: datetime) -> Budget:
        """The engine's Budget with the limit in force at `now`."""
        return engine_budget(
            self.name, self.spec, self.spec.effective_limit_watts(now), self.selector
        )

    def same_spec(self, other: BudgetSource) -> bool:
        return self.spec == other.spec and self.generation == other.generation


def budget_from_object(obj: JSON) -> BudgetSource:
    meta = meta_of(obj)
    name = str(meta["name"])
    try:
        spec = PowerBudgetSpec.model_validate(obj.get("spec") or {})
    except ValidationError as err:
        raise _spec_error("PowerBudget", name, err) from err
    return BudgetSource(
        name,
        spec,
        engine_selector(spec.node_selector),
        int(meta.get("generation") or 0),
        obj.get("status") or {},
        str(meta.get("uid", "")),
    )

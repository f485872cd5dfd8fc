"""Typed models of AcceleratorPool and PowerBudget (wattsched.io/v1alpha1): the objects whole.

These models are the schema: the CRDs under crds/ are generated from them (see crd.py),
and every rule the API server enforces through OpenAPI bounds or CEL is also checked here
with the same message (validation.py), so a sample, a simulator scenario and a kubectl apply
are judged alike. Field names follow DESIGN.md §1 and are a contract; extend, never rename.

This module holds the group, the version and the envelope (apiVersion, kind, metadata, spec,
status) that both kinds share; what is inside a spec is in pool.py and budget.py, each read
on its own, and the meta/v1 parts both embed in meta.py.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from wattsched.api.budget import PowerBudgetSpec, PowerBudgetStatus
from wattsched.api.meta import ObjectMeta
from wattsched.api.pool import AcceleratorPoolSpec, AcceleratorPoolStatus

GROUP = "wattsched.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class _Resource(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    api_version: Literal["wattsched.io/v1alpha1"] = "wattsched.io/v1alpha1"
    metadata: ObjectMeta

    def to_manifest(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class AcceleratorPool(_Resource):
    kind: Literal["AcceleratorPool"] = "AcceleratorPool"
    spec: AcceleratorPoolSpec
    status: AcceleratorPoolStatus | None = None


class PowerBudget(_Resource):
    kind: Literal["PowerBudget"] = "PowerBudget"
    spec: PowerBudgetSpec
    status: PowerBudgetStatus | None = None

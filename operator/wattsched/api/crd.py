"""Generate the CustomResourceDefinitions from the pydantic models.

The models are the single source of truth: `wattsched crds` writes crds/*.yaml from them
and a test fails when the committed files drift, the same idea as kubebuilder's
`make manifests`. Pydantic's JSON Schema is close to a structural OpenAPI v3 schema; the
differences handled here are $ref inlining, optional fields expressed as anyOf-with-null,
and keywords a structural schema forbids (additionalProperties: false, title).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from wattsched.api.budget import PowerBudgetSpec, PowerBudgetStatus
from wattsched.api.models import GROUP, VERSION
from wattsched.api.pool import AcceleratorPoolSpec, AcceleratorPoolStatus

_DROPPED_KEYS = {"title", "additionalProperties_false"}


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    singular: str
    short_name: str
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: tuple[dict[str, Any], ...]


KINDS = (
    Kind(
        kind="AcceleratorPool",
        plural="acceleratorpools",
        singular="acceleratorpool",
        short_name="ap",
        spec=AcceleratorPoolSpec,
        status=AcceleratorPoolStatus,
        description="A set of accelerator nodes of one kind and the power each of them draws.",
        columns=(
            {"name": "Vendor", "type": "string", "jsonPath": ".spec.accelerator.vendor"},
            {"name": "Model", "type": "string", "jsonPath": ".spec.accelerator.model"},
            {"name": "Nodes", "type": "integer", "jsonPath": ".status.nodes"},
            {"name": "Devices", "type": "integer", "jsonPath": ".status.devices"},
            {"name": "Allocated", "type": "integer", "jsonPath": ".status.allocatedDevices"},
            {"name": "Power", "type": "string", "jsonPath": ".status.committed"},
            {
                "name": "Ready",
                "type": "string",
                "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                "priority": 1,
            },
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ),
    ),
    Kind(
        kind="PowerBudget",
        plural="powerbudgets",
        singular="powerbudget",
        short_name="pb",
        spec=PowerBudgetSpec,
        status=PowerBudgetStatus,
        description=(
            "A power domain (site, hall, phase, row, feed) and the limit it must stay within."
        ),
        columns=(
            {
                "name": "Limit",
                "type": "string",
                "jsonPath": ".status.limit",
                "description": "The limit in force now (spec.limit or the schedule entry)",
            },
            {"name": "Committed", "type": "string", "jsonPath": ".status.committed"},
            {"name": "Headroom", "type": "string", "jsonPath": ".status.headroom"},
            {"name": "Enforcement", "type": "string", "jsonPath": ".spec.enforcement"},
            {
                "name": "Admission",
                "type": "string",
                "jsonPath": ".spec.admission",
                "priority": 1,
            },
            {
                "name": "Measured",
                "type": "string",
                "jsonPath": ".status.measured",
                "description": "What the readings show (admission: Measured)",
                "priority": 1,
            },
            {
                "name": "Estimated",
                "type": "string",
                "jsonPath": ".status.estimated",
                "description": "What admission counts (admission: Measured)",
                "priority": 1,
            },
            {
                "name": "Within",
                "type": "string",
                "jsonPath": '.status.conditions[?(@.type=="WithinLimit")].status',
                "priority": 1,
            },
            {
                "name": "Reserve%",
                "type": "integer",
                "jsonPath": ".spec.reservePercent",
                "priority": 1,
            },
            {"name": "PUE", "type": "string", "jsonPath": ".spec.pue", "priority": 1},
            {
                "name": "Next-Change",
                "type": "string",
                "jsonPath": ".status.nextChange.at",
                "priority": 1,
            },
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ),
    ),
)


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        merged = dict(_resolve(target, defs))
        merged.update({k: _resolve(v, defs) for k, v in node.items()})
        return _clean(merged)
    if "allOf" in node and len(node["allOf"]) == 1:
        inner = _resolve(node.pop("allOf")[0], defs)
        inner.update({k: _resolve(v, defs) for k, v in node.items()})
        return _clean(inner)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) == 1:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            inner = _resolve(options[0], defs)
            inner.update({k: _resolve(v, defs) for k, v in rest.items()})
            return _clean(inner)
    return _clean({k: _resolve(v, defs) for k, v in node.items()})


def _clean(node: dict[str, Any]) -> dict[str, Any]:
    node.pop("title", None)
    if node.get("additionalProperties") is False:
        node.pop("additionalProperties")
    if "default" in node and node["default"] is None:
        node.pop("default")
    return node


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A structural OpenAPI v3 schema for a model, validations included."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.pop("$defs", {})
    return _resolve(schema, defs)  # type: ignore[no-any-return]


def crd_manifest(kind: Kind) -> dict[str, Any]:
    spec_schema = openapi_schema(kind.spec)
    status_schema = openapi_schema(kind.status)
    status_schema["description"] = "Written by the wattsched operator only."
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "wattsched"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": [kind.short_name],
                "categories": ["wattsched"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(kind.columns),
                    "schema": {
                        "openAPIV3Schema": {
                            "description": kind.description,
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render(kind: Kind) -> str:
    header = "# Generated by `wattsched crds` from wattsched.api.models; do not edit by hand.\n"
    return header + yaml.safe_dump(crd_manifest(kind), sort_keys=False, width=100)


def crd_filename(kind: Kind) -> str:
    return f"{GROUP}_{kind.plural}.yaml"


def write_crds(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        path = out_dir / crd_filename(kind)
        path.write_text(render(kind))
        written.append(path)
    return written

"""Load wattsched manifests from YAML files, with errors that name the object and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from wattsched.api.models import AcceleratorPool, PowerBudget

Resource = AcceleratorPool | PowerBudget
_KINDS: dict[str, type[AcceleratorPool] | type[PowerBudget]] = {
    "AcceleratorPool": AcceleratorPool,
    "PowerBudget": PowerBudget,
}


class ManifestError(ValueError):
    """A manifest that the API server would refuse; the message says which field and why."""


def describe(err: ValidationError, where: str) -> str:
    lines = []
    for problem in err.errors():
        field = ".".join(str(part) for part in problem["loc"])
        lines.append(f"{where}: {field}: {problem['msg']}")
    return "\n".join(lines)


def parse_resource(document: dict[str, Any]) -> Resource:
    kind = document.get("kind")
    name = (document.get("metadata") or {}).get("name", "<no name>")
    model = _KINDS.get(str(kind))
    if model is None:
        raise ManifestError(f"kind {kind!r} is not a wattsched kind ({', '.join(_KINDS)})")
    try:
        return model.model_validate(document)
    except ValidationError as err:
        raise ManifestError(describe(err, f"{kind}/{name}")) from None


def load_manifests(path: Path, *, skip_foreign: bool = True) -> list[Resource]:
    """Every AcceleratorPool and PowerBudget in a multi-document YAML file."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as err:
        raise ManifestError(f"cannot read {path}: {err}") from None
    resources = []
    for document in documents:
        if skip_foreign and document.get("kind") not in _KINDS:
            continue
        resources.append(parse_resource(document))
    return resources

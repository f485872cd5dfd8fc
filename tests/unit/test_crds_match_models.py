"""The committed CRDs are exactly what the models generate: the schema cannot drift."""

from pathlib import Path

import yaml

from wattsched.api.crd import KINDS, crd_filename, render

CRDS = Path(__file__).resolve().parents[2] / "crds"


def test_committed_crds_equal_what_the_models_generate() -> None:
    for kind in KINDS:
        committed = (CRDS / crd_filename(kind)).read_text()
        assert committed == render(kind), f"{crd_filename(kind)} drifted: run `make crds`"


def test_crds_are_cluster_scoped_with_status_subresource_short_names_and_category() -> None:
    for kind in KINDS:
        crd = yaml.safe_load(render(kind))
        spec = crd["spec"]
        assert spec["scope"] == "Cluster"
        assert spec["names"]["shortNames"] == [kind.short_name]
        assert spec["names"]["categories"] == ["wattsched"]
        version = spec["versions"][0]
        assert version["subresources"] == {"status": {}}


def test_printer_columns_are_the_ones_admins_read() -> None:
    columns = {
        kind.kind: [c["name"] for c in kind.columns if not c.get("priority")] for kind in KINDS
    }
    assert columns["AcceleratorPool"][:6] == [
        "Vendor",
        "Model",
        "Nodes",
        "Devices",
        "Allocated",
        "Power",
    ]
    assert columns["PowerBudget"] == ["Limit", "Committed", "Headroom", "Enforcement", "Age"]


def test_schemas_are_structural_no_refs_no_titles_no_closed_objects() -> None:
    def walk(node: object) -> None:
        if isinstance(node, dict):
            assert "$ref" not in node and "title" not in node and "anyOf" not in node
            assert node.get("additionalProperties") is not False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for kind in KINDS:
        walk(yaml.safe_load(render(kind)))

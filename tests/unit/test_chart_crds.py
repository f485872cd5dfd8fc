"""The chart ships the very CRDs the models generate: helm/wattsched/crds/ equals crds/."""

from pathlib import Path

from wattsched.api.crd import KINDS, crd_filename

REPO = Path(__file__).resolve().parents[2]
REPO_CRDS = REPO / "crds"
CHART_CRDS = REPO / "helm" / "wattsched" / "crds"


def test_chart_crds_are_byte_for_byte_the_repository_crds() -> None:
    for kind in KINDS:
        name = crd_filename(kind)
        chart_copy = CHART_CRDS / name
        assert chart_copy.exists(), f"{chart_copy} is missing: run `make crds`"
        assert chart_copy.read_text() == (REPO_CRDS / name).read_text(), (
            f"helm/wattsched/crds/{name} differs from crds/{name}: run `make crds`"
        )


def test_chart_ships_no_crd_the_models_do_not_define() -> None:
    expected = {crd_filename(kind) for kind in KINDS}
    shipped = {path.name for path in CHART_CRDS.iterdir()}
    assert shipped == expected, f"unexpected files in helm/wattsched/crds/: {shipped - expected}"

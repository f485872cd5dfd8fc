"""Selectors, affinity and tolerations mean what they mean in Kubernetes."""

import pytest

from wattsched.scheduling import (
    LabelSelector,
    NodeAffinity,
    SelectorRequirement,
    Taint,
    Toleration,
)
from wattsched.scheduling.builders import gpu_pod

LABELS = {"hall": "a", "gen": "3", "zone": "z1"}


def req(key: str, op: str, *values: str) -> SelectorRequirement:
    return SelectorRequirement(key, op, values)


def test_an_empty_label_selector_matches_everything_as_in_metav1() -> None:
    assert LabelSelector().matches({})
    assert LabelSelector().matches(LABELS)


def test_match_labels_and_expressions_must_all_hold() -> None:
    selector = LabelSelector({"hall": "a"}, (req("zone", "In", "z1", "z2"),))
    assert selector.matches(LABELS)
    assert not selector.matches({**LABELS, "zone": "z3"})
    assert not selector.matches({"zone": "z1"})


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        (req("hall", "In", "a"), True),
        (req("hall", "NotIn", "a"), False),
        (req("missing", "NotIn", "a"), True),
        (req("hall", "Exists"), True),
        (req("missing", "DoesNotExist"), True),
        (req("gen", "Gt", "2"), True),
        (req("gen", "Lt", "2"), False),
        (req("hall", "Gt", "2"), False),  # not an integer: no match, not an error
    ],
)
def test_each_selector_operator(requirement: SelectorRequirement, expected: bool) -> None:
    assert requirement.matches(LABELS) is expected


def test_an_unknown_operator_is_an_error_that_names_it() -> None:
    with pytest.raises(ValueError, match="'Near'"):
        req("hall", "Near", "a").matches(LABELS)


def test_node_affinity_is_an_or_of_terms_and_an_and_within_a_term() -> None:
    affinity = NodeAffinity(
        ((req("hall", "In", "b"),), (req("hall", "In", "a"), req("gen", "Gt", "2")))
    )
    assert affinity.matches(LABELS)
    assert not affinity.matches({"hall": "a", "gen": "1"})
    assert not NodeAffinity(()).matches(LABELS)


def test_tolerations_match_by_key_value_and_effect() -> None:
    taint = Taint("gpu", "h200", "NoSchedule")
    assert Toleration("gpu", "Equal", "h200", "NoSchedule").tolerates(taint)
    assert Toleration("gpu", "Equal", "h200").tolerates(taint)  # empty effect: all effects
    assert not Toleration("gpu", "Equal", "b200").tolerates(taint)
    assert Toleration("gpu", "Exists").tolerates(taint)
    assert Toleration(operator="Exists").tolerates(taint)  # empty key + Exists: everything
    assert not Toleration("gpu", "Exists", effect="NoExecute").tolerates(taint)


def test_a_pod_is_keyed_by_namespace_and_name() -> None:
    assert gpu_pod("p", namespace="ml").key == ("ml", "p")

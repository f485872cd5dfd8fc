"""One percentile for every figure (wattsched.percentile): nearest rank, exact."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wattsched.percentile import nearest_rank, percentile


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 0) == 1.0
    assert percentile([3.0], 99) == 3.0


def test_the_median_of_an_even_count_is_the_lower_middle() -> None:
    assert percentile([4, 1, 3, 2], 50) == 2
    assert nearest_rank(4, 50) == 2


def test_the_rank_is_exact_where_binary_fractions_are_not() -> None:
    # 0.07 * 100 is 7.000000000000001 in binary: a float rank would be 8.
    assert nearest_rank(100, 7) == 7
    assert nearest_rank(1000, 99.9) == 999
    assert nearest_rank(20, 95) == 19


def test_no_values_or_a_percent_outside_0_to_100_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        percentile([], 50)
    with pytest.raises(ValueError, match="between 0 and 100"):
        nearest_rank(10, 101)


def _old_bench_e2e(values: list[int], percent: int) -> int:
    """bench/e2e.py's percentile before it moved here."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _old_sim(values: list[int], fraction: float) -> float:
    """wattsched.sim.metrics' percentile before it moved here."""
    ordered = sorted(values)
    rank = max(1, -(-int(fraction * 1000) * len(ordered) // 1000))
    return float(ordered[min(rank, len(ordered)) - 1])


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=400))
def test_the_figures_the_simulator_and_the_e2e_benchmark_recorded_keep_their_value(
    values: list[int],
) -> None:
    for percent in (50, 95, 99):
        assert percentile(values, percent) == _old_bench_e2e(values, percent)
        assert percentile(values, percent) == _old_sim(values, percent / 100)

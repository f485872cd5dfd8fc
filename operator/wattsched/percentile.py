"""The percentile every wattsched figure uses: nearest rank, computed exactly.

The p-th percentile of n values is the value of rank ceil(p/100 * n) (at least 1) in ascending
order: always one of the values, never an interpolation, so a p99 latency or a p95 wait is a
latency or a wait that happened. The p-th percentile is at least p percent of the values and
the median of an even count is the lower middle. The rank is computed with a Fraction of the
percent as written (99, 95, 99.9), so no binary rounding of p/100 moves it by one.

One home for the rule: the simulator's summary, the engine and end-to-end benchmarks and
measured power (DESIGN.md §2b: observed power is a percentile over a window) all call this.
Nothing here imports from the rest of wattsched, so every layer may.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction
from typing import TypeVar

Number = TypeVar("Number", int, float)


def nearest_rank(count: int, percent: float) -> int:
    """The 1-based rank of the ``percent``-th percentile among ``count`` ordered values."""
    if count < 1:
        raise ValueError(f"a percentile of {count} values: there must be at least one")
    exact = Fraction(str(percent))  # 99.9 as written, not as the nearest binary double
    if not 0 <= exact <= 100:
        raise ValueError(f"percentile {percent} must be between 0 and 100")
    return max(1, math.ceil(exact * count / 100))


def percentile(values: Iterable[Number], percent: float) -> Number:
    """The ``percent``-th percentile (0..100) of ``values`` by nearest rank; ValueError when
    there are none (the caller says what an empty figure is: 0, None, a dash)."""
    ordered = sorted(values)
    return ordered[nearest_rank(len(ordered), percent) - 1]

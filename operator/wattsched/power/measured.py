"""Admission on measured power (DESIGN.md §2b), in exact integer arithmetic.

    estimate(n) = min(committed(n), observed(n) + recent(n))    with a fresh reading
                = committed(n)                                  without one (fail safe)
    feasible    : pue * (sum estimate + delta) <= allocatable
              and pue * (sum worst + delta)    <= allocatable * (1 + maxOversubscription%)

Two facts keep this cheap and in one place:
- Placing a pod of committed delta d on n raises committed(n) and recent(n) by d, so estimate(n)
  rises by exactly d (min(a + d, b + d) = min(a, b) + d). The ledger already does that, so a
  budget's estimate is its committed watts less a *gain*, the sum over its nodes of
  committed(n) - estimate(n), which placements in a cycle never change. The gain moves only when
  readings arrive, recent pods age out of the window, or a pod leaves.
- worst(n) is committed(n) until devices can be capped (the agent's work): then the second line
  is the nameplate rule with the allocatable raised by maxOversubscriptionPercent, and with the
  default 0 measured admission can never let in more than the committed ledger would.
"""

from __future__ import annotations

from wattsched.power.watts import fits


def measured_gain(committed_watts: int, observed_watts: int | None, recent_watts: int) -> int:
    """committed(n) - estimate(n) for one node: the IT watts its measurements free, never < 0.

    `observed_watts` is None when the node has no fresh reading: then nothing is gained.
    """
    if observed_watts is None:
        return 0
    return max(0, committed_watts - observed_watts - recent_watts)


def oversubscribed_watts(allocatable_watts: int, max_oversubscription_percent: int) -> int:
    """The bound the worst case must stay under: allocatable raised by the percentage."""
    return allocatable_watts * (100 + max_oversubscription_percent) // 100


def fits_measured(
    committed_it_watts: int,
    gain_it_watts: int,
    it_delta: int,
    pue_milli: int,
    allocatable_watts: int,
    max_oversubscription_percent: int,
) -> bool:
    """Both lines of §2b for one budget; `committed_it_watts` includes room held for nominees."""
    return fits(committed_it_watts - gain_it_watts, it_delta, pue_milli, allocatable_watts) and (
        fits(
            committed_it_watts,
            it_delta,
            pue_milli,
            oversubscribed_watts(allocatable_watts, max_oversubscription_percent),
        )
    )

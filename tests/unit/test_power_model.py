"""The power model of DESIGN.md §2, in integers."""

from hypothesis import given
from hypothesis import strategies as st

from wattsched.power import (
    PowerProfile,
    delta_watts,
    facility_watts,
    fits,
    format_watts,
    node_watts,
)

H200 = PowerProfile(device_watts=700, idle_device_watts=90, node_base_watts=3000)


def test_node_watts_counts_base_allocated_and_idle_devices() -> None:
    assert node_watts(H200, devices=8, allocated=0) == 3000 + 8 * 90
    assert node_watts(H200, devices=8, allocated=8) == 3000 + 8 * 700
    assert node_watts(H200, devices=8, allocated=3) == 3000 + 3 * 700 + 5 * 90


def test_delta_is_the_difference_of_node_watts_before_and_after() -> None:
    for allocated in range(8):
        for more in range(8 - allocated + 1):
            before = node_watts(H200, 8, allocated)
            after = node_watts(H200, 8, allocated + more)
            assert after - before == delta_watts(H200, more)


def test_facility_watts_round_up_so_the_draw_is_never_understated() -> None:
    assert facility_watts(1000, 1000) == 1000
    assert facility_watts(1001, 1500) == 1502  # 1501.5 rounds up
    assert facility_watts(0, 3000) == 0


@given(
    it=st.integers(0, 10**9),
    delta=st.integers(0, 10**7),
    pue=st.integers(1000, 3000),
    allocatable=st.integers(0, 10**9),
)
def test_fit_is_exactly_facility_committed_within_allocatable(
    it: int, delta: int, pue: int, allocatable: int
) -> None:
    assert fits(it, delta, pue, allocatable) == (facility_watts(it + delta, pue) <= allocatable)


def test_format_watts_is_short_and_human() -> None:
    assert format_watts(850) == "850 W"
    assert format_watts(5600) == "5.6 kW"
    assert format_watts(1200) == "1.2 kW"
    assert format_watts(41_000_000) == "41 MW"
    assert format_watts(103_000_000) == "103 MW"
    assert format_watts(1_500_000_000) == "1.5 GW"
    assert format_watts(0) == "0 W"
    assert format_watts(-1200) == "-1.2 kW"

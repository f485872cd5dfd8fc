"""Power quantities parse to exact integer watts, the way admins write them."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wattsched.api.units import PowerSyntaxError, format_power, parse_power, parse_pue_milli


@pytest.mark.parametrize(
    ("text", "watts"),
    [
        ("41MW", 41_000_000),
        ("950kW", 950_000),
        ("1.2GW", 1_200_000_000),
        ("9600W", 9_600),
        ("0.5MW", 500_000),
        ("103MW", 103_000_000),
        ("1.234567MW", 1_234_567),
    ],
)
def test_power_strings_parse_to_integer_watts(text: str, watts: int) -> None:
    assert parse_power(text) == watts


@pytest.mark.parametrize(
    "text", ["41", "41 MW", "41mw", "-1MW", "1.5W", "1.2345kW", "MW", "", "4.1e7W", "41MWh"]
)
def test_power_strings_that_do_not_name_whole_watts_are_refused_with_the_syntax(
    text: str,
) -> None:
    with pytest.raises(PowerSyntaxError, match="W, kW, MW or GW"):
        parse_power(text)


@given(st.integers(min_value=0, max_value=10**12))
def test_formatted_power_parses_back_to_the_same_watts_when_exact(watts: int) -> None:
    text = format_power(watts)
    parsed = parse_power(text)
    # Three decimals in the chosen unit: exact for W and kW, within 0.05% otherwise.
    assert abs(parsed - watts) <= max(watts // 2000, 0) + 1


def test_power_is_formatted_in_the_unit_that_keeps_it_short() -> None:
    assert format_power(38_120_000) == "38.12MW"
    assert format_power(830_000) == "830kW"
    assert format_power(-1_200) == "-1.2kW"
    assert format_power(750) == "750W"


@pytest.mark.parametrize(("text", "milli"), [("1.0", 1000), ("1.25", 1250), ("3", 3000)])
def test_pue_is_kept_in_exact_thousandths(text: str, milli: int) -> None:
    assert parse_pue_milli(text) == milli


@pytest.mark.parametrize("text", ["0.9", "3.5", "1.2345", "one"])
def test_pue_outside_one_to_three_is_refused(text: str) -> None:
    with pytest.raises(PowerSyntaxError, match="pue"):
        parse_pue_milli(text)

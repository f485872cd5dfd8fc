"""Power quantities as admins write them ("41MW") and as the ledger keeps them (integer watts).

Watts are integers everywhere in wattsched so that an incrementally kept ledger and one
recomputed from scratch are equal to the watt, never merely close. The syntax therefore
only allows as many decimals as a unit has whole watts (kW: 3, MW: 6, GW: 9), and the
CRD's pattern says the same thing, so the API server and this parser agree on every input.
"""

from __future__ import annotations

import re
from decimal import Decimal

UNIT_WATTS = {"W": 1, "kW": 1_000, "MW": 1_000_000, "GW": 1_000_000_000}

POWER_PATTERN = (
    r"^([0-9]+W|[0-9]+(\.[0-9]{1,3})?kW|[0-9]+(\.[0-9]{1,6})?MW|[0-9]+(\.[0-9]{1,9})?GW)$"
)
PUE_PATTERN = r"^[0-9](\.[0-9]{1,3})?$"

_POWER = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<unit>W|kW|MW|GW)$")


class PowerSyntaxError(ValueError):
    """A power or PUE string that does not say a whole number of watts."""


def parse_power(text: str) -> int:
    """'41MW' -> 41000000. Raises PowerSyntaxError with the accepted syntax on bad input."""
    match = _POWER.match(text.strip()) if isinstance(text, str) else None
    if match is None or not re.match(POWER_PATTERN, text.strip()):
        raise PowerSyntaxError(
            f"{text!r} is not a power: write a number and a unit W, kW, MW or GW, "
            "with no more decimals than whole watts (e.g. 9600W, 950kW, 41MW, 1.2GW)"
        )
    watts = Decimal(match["number"]) * UNIT_WATTS[match["unit"]]
    return int(watts)


def parse_pue_milli(text: str) -> int:
    """'1.25' -> 1250: PUE as an integer in thousandths, so power arithmetic stays exact."""
    if not isinstance(text, str) or not re.match(PUE_PATTERN, text.strip()):
        raise PowerSyntaxError(
            f"pue {text!r} must be a decimal between 1.0 and 3.0 "
            "with at most 3 decimals, e.g. '1.25'"
        )
    milli = int(Decimal(text.strip()) * 1000)
    if not 1000 <= milli <= 3000:
        raise PowerSyntaxError(f"pue {text!r} must be between 1.0 and 3.0")
    return milli


def format_power(watts: int) -> str:
    """38120000 -> '38.12MW': the unit that keeps the figure short, in the syntax admins write."""
    sign = "-" if watts < 0 else ""
    magnitude = abs(watts)
    for unit in ("GW", "MW", "kW"):
        scale = UNIT_WATTS[unit]
        if magnitude >= scale:
            value = Decimal(magnitude) / scale
            text = f"{value:.3f}".rstrip("0").rstrip(".")
            return f"{sign}{text}{unit}"
    return f"{sign}{magnitude}W"

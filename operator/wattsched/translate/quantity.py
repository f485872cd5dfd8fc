"""Kubernetes resource quantities ("500m", "64Gi", "1e3") as the integers the engine counts.

Kubernetes rounds a quantity up when it asks for an integer (`Value()`, `MilliValue()`), so a
pod asking for "0.5" of a device asks for one; the engine must see what the API server sees.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_SUFFIX = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE](?P<exponent>[+-]?[0-9]+))?$"
)
MILLI_RESOURCES = frozenset({"cpu"})


class QuantityError(ValueError):
    """Not a Kubernetes quantity."""


def parse_quantity(text: str | int | float) -> Decimal:
    """'500m' -> Decimal('0.5'); '1Gi' -> Decimal(1073741824)."""
    if isinstance(text, int | float):
        return Decimal(str(text))
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise QuantityError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 2, 64Gi, 1e3)")
    try:
        number = Decimal(match["number"])
    except InvalidOperation as err:  # pragma: no cover - the pattern admits only decimals
        raise QuantityError(f"{text!r} is not a Kubernetes quantity") from err
    if match["exponent"] is not None:
        return number.scaleb(int(match["exponent"]))
    return number * _SUFFIX[match["suffix"] or ""]


def resource_amount(resource: str, text: str | int | float) -> int:
    """The integer the engine counts: millicores for cpu, the rounded-up value otherwise."""
    value = parse_quantity(text)
    if resource in MILLI_RESOURCES:
        value *= 1000
    return math.ceil(value)

"""Each rule the API server enforces, stated twice with one message.

A wattsched object is judged in two places: by the API server, through the CRD's OpenAPI
patterns and CEL rules, and by the pydantic models, for a sample, a simulator scenario or an
object the operator reads. If the two disagreed, `kubectl apply` would accept what the simulator
refuses, or say it in other words. So each rule has one home here, with both halves side by
side: the pattern or CEL for the server, the Python check for the models, and the same message.
units.py does the same for power and PUE syntax.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from wattsched.api.units import POWER_PATTERN, UNIT_WATTS, parse_power

RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
RESOURCE_NAME_PATTERN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"  # noqa: E501


def parse_instant(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; write it as RFC 3339, e.g. ...T00:00:00Z")
    return parsed.astimezone(UTC)


def cel_rule(
    rule: str,
    message: str,
    field_path: str | None = None,
    message_expression: str | None = None,
) -> dict[str, str]:
    entry = {"rule": rule, "message": message}
    if message_expression:
        entry["messageExpression"] = message_expression
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def cel_validations(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


# The largest limit a PowerBudget accepts. The largest AI campuses planned draw a few GW, so a
# limit above this is a slip of the unit (GW for MW), and a limit that large guards nothing.
MAX_LIMIT_WATTS = 100 * UNIT_WATTS["GW"]
_ABOVE_MAX_LIMIT = (
    "is above 100GW, the largest a PowerBudget accepts: check the unit "
    "(a 100 MW-class site is written 103MW, not 103GW)"
)
# The watts of a well-formed limit, in CEL. A double, not an int: a 31-digit number of watts
# would overflow int() with an error instead of our message, while a double near 100 GW is off
# by less than a thousandth of a watt, so it never takes 100GW for one watt more or less.
_LIMIT_WATTS_CEL = (
    "double(self.find('^[0-9.]+')) * (self.endsWith('GW') ? 1e9 : self.endsWith('MW') ? 1e6"
    " : self.endsWith('kW') ? 1e3 : 1.0)"
)


def limit_field(description: str) -> Any:
    """A power limit: the syntax of units.py, more than zero, at most MAX_LIMIT_WATTS.

    The bound's rule first matches the syntax again because the API server runs CEL even on a
    value that failed the pattern, and converting such a value would add an error of its own
    to the pattern's clear one.
    """
    return Field(
        max_length=32,
        pattern=POWER_PATTERN,
        description=description,
        json_schema_extra=cel_validations(
            cel_rule("!self.matches('^[0.]+[A-Za-z]+$')", "limit must be greater than zero"),
            cel_rule(
                f"!self.matches(r'{POWER_PATTERN}') || {_LIMIT_WATTS_CEL} <= {MAX_LIMIT_WATTS}.0",
                f"limit {_ABOVE_MAX_LIMIT}",
                message_expression=f"'limit ' + self + ' {_ABOVE_MAX_LIMIT}'",
            ),
        ),
    )


def check_limit(limit: str) -> str:
    """The model's side of limit_field's CEL rules, with the same messages."""
    watts = parse_power(limit)
    if watts <= 0:
        raise ValueError("limit must be greater than zero")
    if watts > MAX_LIMIT_WATTS:
        raise ValueError(f"limit {limit} {_ABOVE_MAX_LIMIT}")
    return limit

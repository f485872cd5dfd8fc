"""What every translation shares: the JSON shape, and errors a person can act on."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

JSON = Mapping[str, Any]
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
MAX_GANG_SIZE = 10_000


class TranslationError(ValueError):
    """An object wattsched cannot use as it is; the message says what is wrong and what is right."""

    def __init__(self, message: str, reason: str = "Invalid") -> None:
        super().__init__(message)
        self.reason = reason  # a CamelCase word for condition reasons and Events


def meta_of(obj: JSON) -> JSON:
    meta: JSON = obj.get("metadata") or {}
    return meta


def creation_seconds(obj: JSON) -> int:
    """creationTimestamp as whole seconds since the epoch (0 when absent)."""
    stamp = meta_of(obj).get("creationTimestamp")
    if not stamp:
        return 0
    parsed = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())

"""A bounded log of changes that ClusterState writes and the SchedulingQueue reads.

The queue keeps work across cycles (a sorted order, parked pods) and needs to know only what
changed since it last looked: which pods joined the pending set (so it merges instead of
re-sorting), and which pods and gangs were upserted or removed (so their parks no longer hold).
Entries are references the state already holds, so logging costs a list append. A reader that
fell further behind than the log keeps gets None and must start over, which is always safe.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class ChangeLog(Generic[T]):
    def __init__(self) -> None:
        self.version = 0  # bumped with every entry
        self._entries: list[T] = []  # the entries behind versions _base+1 .. version
        self._base = 0

    def append(self, entry: T, keep: int) -> None:
        """Log `entry`; past `keep` entries the older half is forgotten."""
        entries = self._entries
        entries.append(entry)
        self.version += 1
        if len(entries) > keep:
            drop = len(self._entries) // 2
            del self._entries[:drop]
            self._base += drop

    def since(self, version: int) -> list[T] | None:
        """The entries after `version`, or None when the log no longer reaches back that far."""
        if version < self._base or version > self.version:
            return None
        return self._entries[version - self._base :]

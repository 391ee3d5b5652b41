"""Process-wide counts of lookup-table misses, so unmapped codes can be added later.

Every ``lookup`` op that finds no entry for a (non-empty) key records it here, whether
the op then uses a default, keeps the value or rejects the message.  The engine reads
``misses()`` (and may persist them and ``restore`` them at start-up), subscribes with
``on_miss`` to be told as they happen, and ``radbridge lookups misses`` prints
``format_misses``.

Keys are codes from the message (e.g. an unknown OBR-24 section), cut to
``MAX_KEY_LENGTH``; the registry keeps at most ``MAX_ENTRIES`` distinct misses and counts
the rest in ``dropped``.  Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

__all__ = ["MISSES", "LookupMissRegistry", "Miss", "format_misses", "misses"]

MAX_KEY_LENGTH = 64
MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class Miss:
    """One key that a table did not have: how often and when (epoch seconds)."""

    mapping: str
    table: str
    key: str
    count: int
    first_seen: float
    last_seen: float


class LookupMissRegistry:
    """Miss counters keyed by (mapping, table, key)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str, str], Miss] = {}
        self._callbacks: list[Callable[[Miss], None]] = []
        self.dropped = 0
        self.callback_errors = 0

    def record(self, mapping: str, table: str, key: str, now: float | None = None) -> Miss | None:
        """Count one miss; returns the updated entry (``None`` when the registry is full)."""
        key = key[:MAX_KEY_LENGTH]
        when = time.time() if now is None else now
        with self._lock:
            ident = (mapping, table, key)
            old = self._entries.get(ident)
            if old is None:
                if len(self._entries) >= MAX_ENTRIES:
                    self.dropped += 1
                    return None
                miss = Miss(mapping, table, key, 1, when, when)
            else:
                miss = replace(old, count=old.count + 1, last_seen=when)
            self._entries[ident] = miss
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(miss)
            except Exception:  # a failing observer must never fail the message
                self.callback_errors += 1
        return miss

    def misses(self) -> list[Miss]:
        """Every miss, most frequent first."""
        with self._lock:
            entries = list(self._entries.values())
        return sorted(entries, key=lambda m: (-m.count, m.mapping, m.table, m.key))

    def on_miss(self, callback: Callable[[Miss], None]) -> Callable[[], None]:
        """Call ``callback(miss)`` after every recorded miss; returns an unsubscribe function."""
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    def restore(self, saved: Iterable[Miss]) -> None:
        """Merge persisted misses back in (counts add up, first/last seen widen)."""
        with self._lock:
            for m in saved:
                ident = (m.mapping, m.table, m.key)
                old = self._entries.get(ident)
                merged = m
                if old is not None:
                    merged = Miss(m.mapping, m.table, m.key, old.count + m.count,
                                  min(old.first_seen, m.first_seen),
                                  max(old.last_seen, m.last_seen))
                elif len(self._entries) >= MAX_ENTRIES:
                    self.dropped += 1
                    continue
                self._entries[ident] = merged

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.dropped = 0


#: the registry every mapping records into unless given another one
MISSES = LookupMissRegistry()


def misses() -> list[Miss]:
    """The process-wide misses (``MISSES.misses()``)."""
    return MISSES.misses()


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_misses(entries: Iterable[Miss]) -> str:
    """A Markdown table of misses for ``radbridge lookups misses``."""
    rows = list(entries)
    if not rows:
        return "no lookup misses recorded"
    lines = ["| mapping | table | key | count | first seen | last seen |",
             "|---|---|---|---:|---|---|"]
    for m in rows:
        key = m.key.replace("|", "\\|") or '""'
        lines.append(f"| {m.mapping} | {m.table} | {key} | {m.count} | {_when(m.first_seen)} "
                     f"| {_when(m.last_seen)} |")
    return "\n".join(lines)

"""Lookup-table misses: persisted from the in-process registry to the store and back.

A missing code is how analysts learn the RIS added a procedure, so every miss counted by
``transforms.misses.MISSES`` is written to the ``lookup_misses`` table (batched every
couple of seconds) and restored at start-up, and ``radbridge lookups misses`` lists it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from transforms.misses import MISSES, Miss

_FLUSH_S = 2.0


def load_misses(conn: sqlite3.Connection) -> list[Miss]:
    rows = conn.execute(
        "SELECT mapping, tbl, key, count, first_seen, last_seen FROM lookup_misses"
        " ORDER BY count DESC, mapping, tbl, key"
    ).fetchall()
    return [Miss(*r) for r in rows]


def _save(misses: list[Miss]) -> Any:
    def op(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO lookup_misses (mapping, tbl, key, count, first_seen,"
            " last_seen) VALUES (?,?,?,?,?,?)",
            [(m.mapping, m.table, m.key, m.count, m.first_seen, m.last_seen) for m in misses],
        )

    return op


async def persist_misses_forever(store: Any) -> None:
    """Restore saved misses into the registry, then save new ones as they happen."""
    saved = await store.read_tx(load_misses)
    MISSES.clear()
    MISSES.restore(saved)
    pending: dict[tuple[str, str, str], Miss] = {}
    wake = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_miss(miss: Miss) -> None:  # may run on any thread
        def record() -> None:
            pending[(miss.mapping, miss.table, miss.key)] = miss
            wake.set()

        loop.call_soon_threadsafe(record)

    unsubscribe = MISSES.on_miss(on_miss)
    try:
        while True:
            await wake.wait()
            wake.clear()
            await asyncio.sleep(_FLUSH_S)
            batch = list(pending.values())
            pending.clear()
            await store.write_tx(_save(batch))
    finally:
        unsubscribe()
        if pending:
            await store.write_tx(_save(list(pending.values())))

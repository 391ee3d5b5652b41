"""An in-memory SQLite database with every schema of ``engine.store`` applied, for tests of
the store functions that take a connection."""

from __future__ import annotations

import sqlite3
from importlib import resources


def memory_db(*, foreign_keys: bool = True) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    if foreign_keys:
        conn.execute("PRAGMA foreign_keys=ON")
    for schema in sorted(resources.files("engine.store").iterdir(), key=lambda p: p.name):
        if schema.name.endswith(".sql"):
            conn.executescript(schema.read_text())
    return conn

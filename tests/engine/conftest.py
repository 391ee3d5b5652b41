"""Fixtures shared by the engine tests: a SQLite store (``synchronous=FULL``, as shipped)
in a temporary directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.store.sqlite import SQLiteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "db.sqlite")
    await s.open()
    try:
        yield s
    finally:
        await s.aclose()

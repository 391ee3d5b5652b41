"""Fixtures shared by the channel tests: a SQLite store in a temporary directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.store.sqlite import SQLiteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "store.sqlite", synchronous="NORMAL")
    await s.open()
    try:
        yield s
    finally:
        await s.aclose()

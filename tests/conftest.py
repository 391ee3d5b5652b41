"""Fixtures for every test package."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from tests.support.store import memory_db


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    """An in-memory store database (every schema, foreign keys on)."""
    c = memory_db()
    yield c
    c.close()

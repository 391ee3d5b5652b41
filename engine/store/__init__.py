"""Durable storage: the interface and its backends."""

from __future__ import annotations

from pathlib import Path

from engine.errors import StoreError
from engine.store.base import Store
from engine.store.sqlite import SQLiteStore

__all__ = ["SQLiteStore", "Store", "open_store"]


def open_store(url: str, data_dir: str | Path, *, synchronous: str = "FULL") -> Store:
    """A store for ``RADBRIDGE_STORE``: empty → SQLite file in the data directory."""
    if not url:
        return SQLiteStore(Path(data_dir) / "radbridge.db", synchronous=synchronous)
    if url.startswith("sqlite:///"):
        return SQLiteStore(url.removeprefix("sqlite:///"), synchronous=synchronous)
    if url.startswith(("postgresql://", "postgres://")):
        raise StoreError("the PostgreSQL store is not implemented yet; use SQLite (default)")
    raise StoreError(f"unsupported store URL scheme: {url.split(':', 1)[0]!r}")

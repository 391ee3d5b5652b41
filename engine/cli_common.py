"""What every ``radbridge`` command shares: exit codes, loading the configuration, the
event loop, the store, and time filters. Imported by ``engine.cli`` and the command modules
beside it (``engine.reconcile_cli``)."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def load_cli_config(path: str) -> tuple[Any, int]:
    from engine.config import load_config

    if not Path(path).is_file():
        print(f"{path}: no such configuration file", file=sys.stderr)
        return None, EXIT_FAIL
    cfg, problems = load_config(path)
    for p in problems:
        print(p, file=sys.stderr)
    return cfg, (EXIT_OK if cfg is not None else EXIT_FAIL)


def run_async(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.run(coro)


_REL = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_since(value: str) -> float:
    """``30m``, ``24h``, ``7d`` ago, or an ISO date/time (UTC when no zone)."""
    m = _REL.match(value.strip())
    if m:
        mult = {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return time.time() - float(m.group(1)) * mult
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def store_for(cfg: Any, config_path: str) -> Any:
    from engine.store import open_store

    base = Path(config_path).resolve().parent
    return open_store(cfg.engine.store, (base / cfg.engine.data_dir).resolve(),
                      synchronous=cfg.engine.sqlite_synchronous)


def with_config(args: Any, command: Callable[[Any, Any], Awaitable[int]]) -> int:
    """Load ``args.config`` (printing its problems) and run ``command(args, cfg)`` on the
    event loop; the exit code."""
    cfg, rc = load_cli_config(args.config)
    if cfg is None:
        return rc
    return int(run_async(command(args, cfg)))

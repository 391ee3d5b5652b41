"""Run a channel source (a DICOM SCP, the reconciler…) inside a test: started as a task,
waited on until it reports ready, cancelled (and its threads joined) on exit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from engine.channel import Source

S = TypeVar("S", bound=Source)


async def _no_dispatch(raw: bytes, peer: str) -> Any:
    raise AssertionError("this source never dispatches")


@asynccontextmanager
async def running(source: S, ready_within_s: float = 10.0) -> AsyncIterator[S]:
    ready = asyncio.Event()
    task = asyncio.create_task(source.run(_no_dispatch, ready.set))
    try:
        async with asyncio.timeout(ready_within_s):
            await ready.wait()
        yield source
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

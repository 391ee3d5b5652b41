"""The MLLP listener's own lifecycle: the port it bound is released whatever ends ``run``."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from channels.mllp.config import MLLPListenerConfig
from channels.mllp.listener import MLLPListener
from engine.metrics import Metrics


async def _never(raw: bytes, peer: str) -> Any:
    raise AssertionError


def _listener() -> MLLPListener:
    return MLLPListener("in", MLLPListenerConfig(type="mllp_listener", host="127.0.0.1",
                                                 port=0), Metrics())


async def test_a_failure_after_the_bind_releases_the_port() -> None:
    src = _listener()

    def ready() -> None:
        raise RuntimeError("ready failed")

    with pytest.raises(RuntimeError, match="ready failed"):
        await asyncio.wait_for(src.run(_never, ready), 10)
    assert src.bound_port
    with socket.socket() as again:  # the runtime's restart binds the same port
        again.bind(("127.0.0.1", src.bound_port))


async def test_cancel_releases_the_port() -> None:
    src = _listener()
    bound = asyncio.Event()
    task = asyncio.create_task(src.run(_never, bound.set))
    await asyncio.wait_for(bound.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with socket.socket() as again:
        again.bind(("127.0.0.1", src.bound_port))

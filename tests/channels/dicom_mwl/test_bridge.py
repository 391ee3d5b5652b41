"""The thread → loop bridge: results, timeouts and failures, never a silent success."""

from __future__ import annotations

import asyncio

import pytest

from engine.dicom.bridge import BridgeError, BridgeTimeout, LoopBridge


async def test_worker_thread_gets_the_coroutine_result() -> None:
    bridge = LoopBridge.for_running_loop(timeout=5)

    async def work() -> int:
        await asyncio.sleep(0)
        return 42

    assert await asyncio.to_thread(lambda: bridge.run(work())) == 42


async def test_slow_work_times_out_and_is_cancelled_on_the_loop() -> None:
    bridge = LoopBridge.for_running_loop(timeout=0.05)
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(BridgeTimeout, match=r"within 0\.05 s"):
        await asyncio.to_thread(lambda: bridge.run(slow()))
    async with asyncio.timeout(2):
        await cancelled.wait()


async def test_failing_work_raises_a_bridge_error_with_the_cause() -> None:
    bridge = LoopBridge.for_running_loop(timeout=5)

    async def broken() -> None:
        raise ValueError("disk on fire")

    with pytest.raises(BridgeError, match="ValueError: disk on fire") as info:
        await asyncio.to_thread(lambda: bridge.run(broken()))
    assert isinstance(info.value.__cause__, ValueError)


async def test_calling_from_the_loop_thread_is_refused_instead_of_deadlocking() -> None:
    bridge = LoopBridge.for_running_loop(timeout=5)

    async def work() -> int:
        return 1

    with pytest.raises(BridgeError, match="loop thread"):
        bridge.run(work())


def test_a_closed_loop_is_a_bridge_error() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    bridge = LoopBridge(loop, timeout=1)

    async def work() -> int:
        return 1

    with pytest.raises(BridgeError, match="unavailable"):
        bridge.run(work())

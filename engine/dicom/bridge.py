"""The thread ↔ asyncio bridge: pynetdicom handler threads run coroutines on the engine loop.

pynetdicom serves each association in its own thread; the engine's store and router live on
the asyncio loop. A handler calls :meth:`LoopBridge.run` with a coroutine: it is scheduled
with ``asyncio.run_coroutine_threadsafe`` and the thread waits at most ``timeout`` seconds.
On timeout the coroutine is cancelled and :class:`BridgeTimeout` raised; if the loop is gone
or the coroutine fails, :class:`BridgeError`. Handlers turn both into a DICOM failure status
(:data:`UNABLE_TO_PROCESS` unless the service has a more specific one) — never a success they
cannot vouch for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from engine.errors import ChannelError

T = TypeVar("T")
UNABLE_TO_PROCESS = 0xC001
"""Failure status for "the SCP could not process the request" (PS3.7 C.4: 0xCxxx)."""


class BridgeError(ChannelError):
    """The work handed to the loop did not complete (loop stopped, or it raised)."""


class BridgeTimeout(BridgeError):
    """The work handed to the loop did not complete in time; it has been cancelled."""


class LoopBridge:
    """Runs coroutines on one event loop on behalf of worker threads."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self._loop_thread = threading.get_ident() if loop.is_running() else None

    @classmethod
    def for_running_loop(cls, *, timeout: float) -> LoopBridge:
        """A bridge to the loop running in the calling (loop) thread."""
        return cls(asyncio.get_running_loop(), timeout=timeout)

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result from a worker thread."""
        limit = self.timeout if timeout is None else timeout
        if threading.get_ident() == self._loop_thread:
            coro.close()
            raise BridgeError("LoopBridge.run called on the loop thread (would deadlock)")
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError as exc:  # loop closed
            coro.close()
            raise BridgeError(f"engine loop unavailable: {exc}") from exc
        try:
            return future.result(limit)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise BridgeTimeout(f"no answer from the engine within {limit:g} s") from exc
        except concurrent.futures.CancelledError as exc:
            raise BridgeError("the engine cancelled the request (shutting down)") from exc
        except BridgeError:
            raise
        except Exception as exc:
            raise BridgeError(f"{type(exc).__name__}: {exc}") from exc

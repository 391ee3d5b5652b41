"""Fresh message control ids (MSH-10) that are unique without coordination."""

from __future__ import annotations

import itertools
import os
import time

__all__ = ["new_control_id"]

_counter = itertools.count()
_pid = os.getpid() & 0xFF


def _after_fork() -> None:
    global _pid
    _pid = os.getpid() & 0xFF


os.register_at_fork(after_in_child=_after_fork)


def new_control_id() -> str:
    """A 19-character upper-case hex id: microseconds, pid byte and a counter.

    Fits the 20-character MSH-10 limit of every version; ``next()`` on
    ``itertools.count`` is atomic under the GIL, so it is safe across threads.
    """
    return f"{time.time_ns() // 1000:013X}{_pid:02X}{next(_counter) & 0xFFFF:04X}"

"""Fresh message control ids (MSH-10) that are unique without coordination."""

from __future__ import annotations

import itertools
import os
import threading
import time

__all__ = ["new_control_id"]

_counter = itertools.count()
_pid = os.getpid() & 0xFF
# Time-and-pid prefix per epoch of 65,536 counter values (formatted once per epoch,
# not once per id): each epoch gets a fresh microsecond value, strictly increasing.
_prefixes: dict[int, str] = {}
_lock = threading.Lock()
_last_us = 0


def _after_fork() -> None:
    global _pid
    _pid = os.getpid() & 0xFF
    _prefixes.clear()  # the child's ids must not reuse the parent's prefixes


os.register_at_fork(after_in_child=_after_fork)


def _prefix(epoch: int) -> str:
    global _last_us
    with _lock:
        prefix = _prefixes.get(epoch)
        if prefix is None:
            _last_us = max(time.time_ns() // 1000, _last_us + 1)
            prefix = f"{_last_us:013X}{_pid:02X}"
            if len(_prefixes) >= 16:  # an older epoch still in use just gets a new one
                _prefixes.clear()
            _prefixes[epoch] = prefix
    return prefix


def new_control_id() -> str:
    """A 19-character upper-case hex id: microseconds, pid byte and a counter.

    The microseconds are taken once per 65,536 ids (a new value each time), so the
    (time, pid, counter) triple never repeats within a process; fits the 20-character
    MSH-10 limit of every version. ``next()`` on ``itertools.count`` is atomic under the
    GIL, so it is safe across threads.
    """
    n = next(_counter)
    prefix = _prefixes.get(n >> 16)
    if prefix is None:
        prefix = _prefix(n >> 16)
    return f"{prefix}{n & 0xFFFF:04X}"

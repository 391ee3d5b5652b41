"""The MLLP ingest path in one process, without sockets (not a test): CPU µs per message.

Drives the real listener protocol (``channels.mllp.listener._Connection``), the channel
pipeline and the SQLite store with K fake connections: each "sends" the 1.3 KB ORM^O01 of
``mllp_bench.py`` through ``data_received`` and sends the next one when its ACK is written
(closed loop, like the load generator). No kernel networking, no second process: what is
left is the engine's own work per message, so a change to it shows without the noise of
the network path. ``--instant-store`` replaces the store by one that completes each loop
pass's ingests at once (no SQLite, no fsync): the cost of everything but the store.

Run: ``.venv/bin/python benchmarks/mllp_inproc.py --k 1,4,16 [--seconds 3]
[--instant-store] [--log-level warning] [--dispatch]`` (pin it with ``taskset -c 0``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mllp_load import make_frame

from channels.mllp.config import MLLPListenerConfig
from channels.mllp.listener import MLLPListener, _Connection
from engine.logging import configure_logging
from engine.metrics import Metrics
from engine.router import ChannelPipeline, PipelineSettings
from engine.store.sqlite import SQLiteStore


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Sender:
    """One fake connection: the next frame as soon as the ACK is written."""

    def __init__(self, i: int, loop: asyncio.AbstractEventLoop) -> None:
        self.i = i
        self.seq = 0
        self.acks = 0
        self.loop = loop
        self.stop = False
        self.conn: _Connection | None = None

    def send(self) -> None:
        self.seq += 1
        assert self.conn is not None
        self.conn.data_received(make_frame(f"R0C{self.i:02d}S{self.seq:07d}".encode()))

    def on_ack(self, _data: bytes) -> None:
        self.acks += 1
        if not self.stop:
            self.send()


class Transport:
    """What ``_Connection`` uses of an asyncio transport; a write is the ACK."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000 + self.sender.i)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.sender.loop.call_soon(self.sender.on_ack, data)

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


class InstantStore:
    """Completes the ingests of each loop pass at once (ids counted, nothing stored)."""

    def __init__(self) -> None:
        self.pending: list[Any] = []
        self.next_id = 0

    def ingest_then(self, _record: Any, _deliveries: Any, done: Any) -> None:
        if not self.pending:
            asyncio.get_running_loop().call_soon(self._complete)
        self.pending.append(done)

    def _complete(self) -> None:
        pending, self.pending = self.pending, []
        for done in pending:
            self.next_id += 1
            done.set_result((self.next_id, None))


async def one(k: int, args: argparse.Namespace, workdir: Path) -> str:
    store = SQLiteStore(workdir / f"k{k}.db")
    await store.open()
    try:
        pipe = ChannelPipeline("bench", PipelineSettings(accept_message_types=["ORM^O01"]),
                               [], store, Metrics())
        if args.instant_store:
            pipe.store = InstantStore()  # type: ignore[assignment]
        src = MLLPListener("bench", MLLPListenerConfig(type="mllp_listener", port=0),
                           Metrics())
        src.submit = None if args.dispatch else pipe.submit
        loop = asyncio.get_running_loop()
        senders = []
        for i in range(k):
            s = Sender(i, loop)
            s.conn = _Connection(src, pipe.dispatch)
            s.conn.connection_made(Transport(s))  # type: ignore[arg-type]
            senders.append(s)
        for s in senders:
            s.send()
        await asyncio.sleep(args.warmup)
        a0, c0, t0 = sum(s.acks for s in senders), cpu_seconds(), time.perf_counter()
        await asyncio.sleep(args.seconds)
        a1, c1, t1 = sum(s.acks for s in senders), cpu_seconds(), time.perf_counter()
        for s in senders:
            s.stop = True
        await asyncio.sleep(0.3)  # the last ones in flight
        for s in senders:
            if s.conn is not None and s.conn.task is not None:
                s.conn.task.cancel()
        n = a1 - a0
        status = store.status()
        batch = status["items"] / status["commits"] if status["commits"] else 0.0
        return (f"| {k} | {n / (t1 - t0):,.0f} | {(c1 - c0) / n * 1e6:.1f} | "
                f"{'-' if args.instant_store else f'{batch:.1f}'} |")
    finally:
        await store.aclose()


async def main(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="mllp-inproc-") as tmp:
        for k in [int(x) for x in args.k.split(",") if x]:
            rows.append(await one(k, args, Path(tmp)))
    lane = "dispatch (worker task)" if args.dispatch else "fast lane"
    store = "instant store" if args.instant_store else "SQLite store (synchronous=FULL)"
    print(f"In process, {lane}, {store}, log level {args.log_level}, "
          f"{args.seconds:g} s per K\n")
    print("| K | msg/s | CPU µs/msg | messages per commit |\n|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k", default="1,4,16")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--instant-store", action="store_true")
    ap.add_argument("--dispatch", action="store_true", help="no fast lane: await dispatch")
    with open(os.devnull, "w") as devnull:  # the summary lines are rendered and written
        cli = ap.parse_args()
        configure_logging(level=cli.log_level, fmt="json", stream=devnull)
        uvloop.run(main(cli))

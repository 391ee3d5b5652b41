"""Bare MLLP baseline for ``mllp_bench.py`` (not part of the engine, not a test).

The least work an MLLP receiver can do and still be durable before it ACKs: frame, take
MSH-10 (needed for MSA-2), commit the raw bytes to SQLite (WAL, ``synchronous=FULL`` by
default), then answer ``MSA|AA``.  No decoding, no parsing, no routing, no logging.

Two designs, chosen with ``--mode``:

* ``group``: the event loop hands each frame to one writer thread; the thread takes
  whatever has queued up (up to ``--max-batch``), inserts it with one ``executemany`` and
  one ``COMMIT``, then hands the whole batch back to the loop in one
  ``call_soon_threadsafe``, which writes the ACKs.  An ACK is never written before the
  commit that holds its message.
* ``inline``: each frame is inserted and committed (autocommit) on the event loop thread
  itself, then ACKed; no thread hop, but one fsync per message and the loop blocks on it.

Run: ``python benchmarks/bare_mllp_server.py --db /tmp/x/bare.db --mode group [--port 0]``.
Prints ``READY <port>`` on stdout once listening; SIGTERM/SIGINT stop it and print one JSON
line of counters.  Table: ``inbound(id INTEGER PRIMARY KEY, received REAL, control_id TEXT,
raw BLOB)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import signal
import socket
import sqlite3
import sys
import threading
import time
from typing import Any

try:
    import uvloop
except ImportError:  # pragma: no cover - the benchmark expects uvloop
    uvloop = None

VT, FS_CR = 0x0B, b"\x1c\r"
_STOP = object()
INSERT = "INSERT INTO inbound (received, control_id, raw) VALUES (?, ?, ?)"


def connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS inbound ("
        "id INTEGER PRIMARY KEY, received REAL, control_id TEXT, raw BLOB)"
    )
    return conn


def control_id(payload: bytes) -> bytes:
    """MSH-10 of the first segment (the only field the baseline reads)."""
    msh = payload.split(b"\r", 1)[0]
    parts = msh.split(msh[3:4], 10) if len(msh) > 3 else []
    return parts[9] if len(parts) > 9 else b""


class _Clock:
    """MSH-7 timestamp, formatted once per second."""

    __slots__ = ("sec", "text")

    def __init__(self) -> None:
        self.sec = -1
        self.text = b""

    def now(self) -> bytes:
        sec = int(time.time())
        if sec != self.sec:
            self.sec = sec
            self.text = time.strftime("%Y%m%d%H%M%S", time.localtime(sec)).encode()
        return self.text


def ack_frame(cid: bytes, ts: bytes) -> bytes:
    return (b"\x0bMSH|^~\\&|BARE|BENCH|||" + ts + b"||ACK|A" + cid + b"|P|2.5\rMSA|AA|"
            + cid + b"\r\x1c\r")


class BareServer:
    def __init__(self, db: str, mode: str, synchronous: str, max_batch: int) -> None:
        self.db = db
        self.mode = mode
        self.synchronous = synchronous
        self.max_batch = max_batch
        self.clock = _Clock()
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.conn: sqlite3.Connection | None = None  # inline mode
        self.writer: threading.Thread | None = None
        self.frames = 0
        self.batches = 0
        self.max_seen_batch = 0
        self.failed = 0

    # -- frames from a connection -----------------------------------------------------
    def handle(self, transport: asyncio.Transport, payload: bytes) -> None:
        self.frames += 1
        cid = control_id(payload)
        ack = ack_frame(cid, self.clock.now())
        row = (time.time(), cid.decode("latin-1"), payload)
        if self.mode == "group":
            self.queue.put((row, transport, ack))
            return
        assert self.conn is not None
        try:
            self.conn.execute(INSERT, row)  # autocommit: one transaction, one fsync
        except sqlite3.Error as exc:
            self.failed += 1
            print(f"bare: insert failed: {exc}", file=sys.stderr)
            transport.abort()
            return
        if not transport.is_closing():
            transport.write(ack)

    # -- group commit -----------------------------------------------------------------
    def _write_loop(self, conn: sqlite3.Connection) -> None:
        get, get_nowait = self.queue.get, self.queue.get_nowait
        loop = self.loop
        assert loop is not None
        try:
            while True:
                first = get()
                if first is _STOP:
                    return
                batch = [first]
                stop = False
                while len(batch) < self.max_batch:
                    try:
                        item = get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
                try:
                    conn.execute("BEGIN")
                    conn.executemany(INSERT, [item[0] for item in batch])
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    self.failed += len(batch)
                    print(f"bare: batch commit failed: {exc}", file=sys.stderr)
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    loop.call_soon_threadsafe(_abort_all, batch)
                else:
                    self.batches += 1
                    self.max_seen_batch = max(self.max_seen_batch, len(batch))
                    loop.call_soon_threadsafe(_ack_all, batch)
                if stop:
                    return
        finally:
            conn.close()

    async def serve(self, host: str, port: int) -> None:
        self.loop = asyncio.get_running_loop()
        conn = connect(self.db, self.synchronous)
        if self.mode == "group":
            self.writer = threading.Thread(target=self._write_loop, args=(conn,),
                                           name="bare-writer", daemon=True)
            self.writer.start()
        else:
            self.conn = conn
        server = await self.loop.create_server(lambda: _Conn(self), host, port, backlog=128)
        bound = server.sockets[0].getsockname()[1]
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, stop.set)
        print(f"READY {bound}", flush=True)
        try:
            await stop.wait()
        finally:
            server.close()
            if self.writer is not None:
                self.queue.put(_STOP)
                await asyncio.to_thread(self.writer.join, 10)
            if self.conn is not None:
                self.conn.close()
            print(json.dumps({"mode": self.mode, "frames": self.frames, "batches": self.batches,
                              "max_batch": self.max_seen_batch, "failed": self.failed}),
                  flush=True)


def _ack_all(batch: list[tuple[Any, asyncio.Transport, bytes]]) -> None:
    for _row, transport, ack in batch:
        if not transport.is_closing():
            transport.write(ack)


def _abort_all(batch: list[tuple[Any, asyncio.Transport, bytes]]) -> None:
    for _row, transport, _ack in batch:
        transport.abort()


class _Conn(asyncio.Protocol):
    __slots__ = ("buf", "server", "transport")

    def __init__(self, server: BareServer) -> None:
        self.server = server
        self.buf = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            start = buf.find(VT)
            if start < 0:
                buf.clear()
                return
            end = buf.find(FS_CR, start + 1)
            if end < 0:
                if start:
                    del buf[:start]
                return
            payload = bytes(buf[start + 1:end])
            del buf[:end + 2]
            self.server.handle(self.transport, payload)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--db", required=True)
    ap.add_argument("--mode", choices=("group", "inline"), default="group")
    ap.add_argument("--synchronous", choices=("FULL", "NORMAL", "EXTRA"), default="FULL")
    ap.add_argument("--max-batch", type=int, default=512)
    ap.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    args = ap.parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    srv = BareServer(args.db, args.mode, args.synchronous, args.max_batch)
    coro = srv.serve(args.host, args.port)
    if uvloop is not None:
        uvloop.run(coro)
    else:  # pragma: no cover
        asyncio.run(coro)
    return 0


if __name__ == "__main__":
    sys.exit(main())

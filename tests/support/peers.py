"""Test peers: a downstream MLLP sink with scriptable behaviour, and the engine subprocess."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"
ROOT = Path(__file__).resolve().parents[2]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW = _ephemeral_low()
_handed_out: set[int] = set()
_rng = random.Random()


def free_port() -> int:
    """A free loopback port for a listener, below the kernel's ephemeral range.

    A port the kernel chose (``bind(0)``) is an ephemeral one: between this call and the
    listener's ``bind`` — or while a test has a peer down before binding the same port
    again — an outgoing connection of any process may get it as its local port, and the
    listener then fails with EADDRINUSE. Ports below the range are never handed to an
    outgoing connection. Each port is handed out once per test process."""
    low = 20000 if _EPHEMERAL_LOW > 21000 else 1024
    for _ in range(500):
        port = _rng.randrange(low, _EPHEMERAL_LOW)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as s:  # pragma: no cover - the low range is full
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def frame(payload: bytes) -> bytes:
    return VT + payload + FS + CR


def control_id(message: bytes) -> str:
    msh = message.split(b"\r", 1)[0].decode("latin-1")
    return msh.split("|")[9]


def ack_for(message: bytes, code: str = "AA") -> bytes:
    cid = control_id(message)
    return (
        f"MSH|^~\\&|SINK|TEST|RADBRIDGE|TEST|20260101000000||ACK^O01^ACK|A{cid}|P|2.5.1\r"
        f"MSA|{code}|{cid}\r"
    ).encode()


@dataclass
class MLLPSink:
    """A blocking-socket MLLP server in a thread: records every frame, answers per ``behaviour``.

    ``behaviour(message) -> bytes | None``: the ACK payload, or None to answer nothing.
    """

    behaviour: Callable[[bytes], bytes | None] = ack_for
    port: int = 0
    received: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.port:  # not an ephemeral port: a test may close the sink and bind it again
            self.port = free_port()
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._srv.bind(("127.0.0.1", self.port))
        except OSError:
            self._srv.close()  # not left to the garbage collector (a warning in a later test)
            raise
        self.port = self._srv.getsockname()[1]
        self._srv.listen(16)
        self._srv.settimeout(0.2)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except (TimeoutError, OSError):
                continue
            self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        conn.settimeout(0.2)
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while True:
                    start = buf.find(VT)
                    end = buf.find(FS + CR, start + 1)
                    if start < 0 or end < 0:
                        break
                    payload, buf = buf[start + 1:end], buf[end + 2:]
                    with self._lock:
                        self.received.append(payload)
                    reply = self.behaviour(payload)
                    if reply is not None:
                        try:
                            conn.sendall(frame(reply))
                        except OSError:
                            return

    def control_ids(self) -> list[str]:
        with self._lock:
            return [control_id(m) for m in self.received]

    def close(self) -> None:
        self._stop.set()
        self._srv.close()
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        for t in self._threads:
            t.join(timeout=2)


def wait_until(pred: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


@dataclass
class EngineProcess:
    """``radbridge run`` as a subprocess, its stderr captured to a file."""

    config: Path
    env: dict[str, str]
    http_port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    mllp_port: int = 0  # the MLLP listener's port, where a test's configuration has one

    def start(self, wait_ready: bool = True, timeout: float = 20.0) -> EngineProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "-c", str(self.config), "run"],
            cwd=str(self.config.parent), env=self.env, stdout=log, stderr=log,
        )
        log.close()
        if wait_ready and not wait_until(self.healthy, timeout):
            self.stop()
            raise RuntimeError(f"engine not ready in {timeout}s:\n{self.logs()[-4000:]}")
        return self

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            raise RuntimeError(f"engine exited with {code}:\n{self.logs()[-4000:]}")
        url = f"http://127.0.0.1:{self.http_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def http_get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
            return str(r.read().decode())

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=5)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "engine", "-c", str(self.config), *args],
            cwd=str(self.config.parent), env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )


def engine_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADBRIDGE_")}
    env.update({"RADBRIDGE_DATA": str(tmp / "data"), "PYTHONPATH": str(ROOT)})
    env.update(extra)
    return env

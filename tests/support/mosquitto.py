"""A real Mosquitto broker for tests: its own config on a free loopback port, stopped after.

``Mosquitto(tmp).start()`` runs ``mosquitto -c conf`` with ``listener PORT 127.0.0.1`` and
``allow_anonymous true``; ``users={"name": "password"}`` writes a password file
(``mosquitto_passwd -b``) and turns anonymous access off. ``stop()`` then ``start()``
again reuses the same port (the broker-down-then-back case). ``subscribe`` collects what a
real ``mosquitto_sub`` receives.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.peers import free_port


def need_mosquitto() -> str:
    path = shutil.which("mosquitto") or ("/usr/sbin/mosquitto"
                                          if Path("/usr/sbin/mosquitto").exists() else None)
    if path is None:
        pytest.skip("mosquitto not installed (Debian package mosquitto)")
    return path


@dataclass
class Mosquitto:
    workdir: Path
    users: dict[str, str] = field(default_factory=dict)
    port: int = 0
    persistent: bool = False
    """Keep sessions and queued QoS 1 messages across a restart (a file in ``workdir``)."""
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _config(self) -> Path:
        # As root, mosquitto drops to user "mosquitto", who cannot read pytest's 0700 tmp
        # dirs; run as whoever runs the tests (ignored when not root).
        lines = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1",
                 f"persistence {'true' if self.persistent else 'false'}",
                 f"persistence_location {self.workdir}/",
                 f"log_dest file {self.workdir / 'mosquitto.log'}", "log_type all"]
        if self.users:
            pwfile = self.workdir / "passwd"
            pwfile.write_text("")
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pwfile), user, password],
                               check=True, timeout=10, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pwfile}"]
        else:
            lines.append("allow_anonymous true")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, timeout: float = 10.0) -> Mosquitto:
        exe = need_mosquitto()
        self.proc = subprocess.Popen([exe, "-c", str(self._config())],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} in {timeout}s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@dataclass
class Subscriber:
    """``mosquitto_sub -v`` on a topic filter; ``lines()`` are ``topic payload``."""

    broker: Mosquitto
    topic: str = "#"
    username: str = ""
    password: str = ""
    durable: bool = False
    """A persistent session (``-c``): with a persistent broker, messages published while
    this subscriber is disconnected (broker restarting) are delivered when it is back."""
    proc: subprocess.Popen[bytes] | None = None
    out: Path | None = None

    def start(self) -> Subscriber:
        self.out = self.broker.workdir / f"sub-{time.monotonic_ns()}.txt"
        cmd = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-q", "1",
               "-v", "-t", self.topic, "-i", f"test-sub-{time.monotonic_ns()}"]
        if self.durable:
            cmd.append("-c")
        if self.username:
            cmd += ["-u", self.username, "-P", self.password]
        with self.out.open("wb") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.DEVNULL)
        time.sleep(0.3)  # let it subscribe before anything is published
        return self

    def lines(self) -> list[str]:
        if self.out is None or not self.out.exists():
            return []
        return [x for x in self.out.read_text(errors="replace").splitlines() if x]

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

"""A raw MLLP test client for crafted byte sequences (the well-behaved client in tests is
python-hl7's, which this project did not write)."""

from __future__ import annotations

import socket
import time

VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"


class RawClient:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(VT + payload + FS + CR)

    def read_frame(self, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            start = self.buf.find(VT)
            end = self.buf.find(FS + CR, start + 1) if start >= 0 else -1
            if start >= 0 and end >= 0:
                payload, self.buf = self.buf[start + 1:end], self.buf[end + 2:]
                return payload
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by peer")
            self.buf += chunk

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


def msa(ack: bytes) -> list[str]:
    for seg in ack.split(b"\r"):
        if seg.startswith(b"MSA"):
            return seg.decode("latin-1").split("|")
    raise AssertionError(f"no MSA in {ack!r}")


def segment(ack: bytes, name: str) -> str:
    for seg in ack.split(b"\r"):
        if seg.startswith(name.encode()):
            return seg.decode("latin-1")
    return ""


def orm(i: int, patient: str = "PAT10001", name: str = "TESTPATIENT^ALICE") -> bytes:
    """A synthetic ORM^O01 with control id MSG{i:06d}."""
    return (
        f"MSH|^~\\&|RIS|GENHOSP|RADBRIDGE|GENHOSP|20261122083000||ORM^O01|MSG{i:06d}|P|2.3.1\r"
        f"PID|1||{patient}^^^GENHOSP^MR||{name}||19800214|F\r"
        f"ORC|NW|PLC{i:06d}|FIL{i:06d}||SC\r"
        f"OBR|1|PLC{i:06d}|FIL{i:06d}|CTHEAD^CT HEAD^L|||||||||||||||ACC{i:06d}|RP{i:06d}\r"
    ).encode()

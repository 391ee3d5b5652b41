"""MLLP over TLS and mutual TLS, with certificates made by openssl for the test."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import EngineFactory
from tests.support.client import orm
from tests.support.peers import MLLPSink

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed"),
]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    d = tmp_path / "pki"
    d.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Test CA",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=d)
    for name, cn in (("server", "127.0.0.1"), ("client", "ris-client")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        ext = d / f"{name}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1\n" if name == "server" else
                       "extendedKeyUsage=clientAuth\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", ext.name,
                 cwd=d)
    return d


def _tls_exchange(port: int, ctx: ssl.SSLContext, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(b"\x0b" + payload + b"\x1c\x0d")
        buf = b""
        while b"\x1c\x0d" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf


def test_mutual_tls_accepts_a_trusted_client_and_refuses_one_without_certificate(
    engine_factory: EngineFactory, sink: MLLPSink, pki: Path
) -> None:
    tls = (f"      tls:\n        cert_file: {pki}/server.crt\n        key_file: {pki}/server.key\n"
           f"        ca_file: {pki}/ca.crt\n        require_client_cert: true\n")
    eng = engine_factory(sink_port=sink.port, extra_source=tls)
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
    reply = _tls_exchange(eng.mllp_port, ctx, orm(1))
    assert b"MSA|AA|MSG000001" in reply

    anonymous = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        r = _tls_exchange(eng.mllp_port, anonymous, orm(2))
        if not r:
            raise ConnectionError("closed without an answer")
    # plain TCP to a TLS listener gets nothing HL7 back and the listener keeps serving
    with socket.create_connection(("127.0.0.1", eng.mllp_port), timeout=5) as plain:
        plain.sendall(b"\x0b" + orm(3) + b"\x1c\x0d")
        plain.settimeout(5)
        try:
            data = plain.recv(65536)
        except (ConnectionError, TimeoutError):
            data = b""
        assert b"MSA|AA" not in data
    assert b"MSA|AA|MSG000004" in _tls_exchange(eng.mllp_port, ctx, orm(4))

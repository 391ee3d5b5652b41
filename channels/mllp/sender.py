"""MLLP sender: one kept connection, one message at a time, every ACK checked.

An ACK is accepted only if it answers *this* message (MSA-2 = MSH-10). On an ACK timeout
the socket is closed before anything else is sent, so a late ACK can never be matched to
the next message (Mirth connect#1441). AA/CA → sent; AE/CE → retry (configurable);
AR/CR → failed for good (configurable). Reconnection backoff is the engine's retry policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from channels.mllp.config import MLLPSenderConfig
from channels.mllp.framing import (
    Frame,
    FrameTooLarge,
    FramingConfig,
    FramingError,
    MLLPDecoder,
    describe_unframed,
    encode_frame,
)
from channels.mllp.tls import client_context
from engine.channel import Destination
from engine.errors import PermanentDelivery, RetryableDelivery
from engine.hl7 import HL7Message, HL7ParseError, parse_ack
from engine.logging import get_logger
from engine.registry import register_destination
from engine.router import decode

log = get_logger("radbridge.mllp")


def _fast_control_id(payload: bytes) -> str | None:
    """MSH-10 read from the bytes when that is unambiguous: the payload starts with an
    ASCII ``MSH|`` header (no BOM, no wide encoding) that has MSH-9 to MSH-12 valued, and
    MSH-10 is plain printable ASCII (no escape, repetition or component character).
    ``None``: decode and parse the whole message instead (the general path)."""
    if payload[:4] != b"MSH|":
        return None
    end = payload.find(b"\r", 0, 65536)
    if end < 0:
        return None
    f = payload[:end].split(b"|", 13)
    if len(f) < 12 or len(f[1]) < 4 or not (f[8] and f[9] and f[10] and f[11]):
        return None
    cid = f[9]
    comp, rep, esc = f[1][0:1], f[1][1:2], f[1][2:3]
    if (f[8][:1] == comp or comp in cid or rep in cid or esc in cid
            or not cid.isascii() or not cid.decode("ascii").isprintable()):
        return None
    return cid.decode("ascii")


@register_destination
class MLLPSender(Destination):
    type_name = "mllp_sender"
    config_model = MLLPSenderConfig
    config: MLLPSenderConfig

    def __init__(self, name: str, config: MLLPSenderConfig) -> None:
        super().__init__(name, config)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = MLLPDecoder(FramingConfig(max_frame_bytes=config.max_frame_bytes))

    async def _connect(self) -> None:
        cfg = self.config
        ssl_ctx = client_context(cfg.tls) if cfg.tls else None
        try:
            async with asyncio.timeout(cfg.connect_timeout_s):
                self._reader, self._writer = await asyncio.open_connection(
                    cfg.host, cfg.port, ssl=ssl_ctx,
                    server_hostname=(cfg.tls.server_hostname or cfg.host) if cfg.tls else None,
                )
        except TimeoutError as exc:
            raise RetryableDelivery(
                f"connect to {cfg.host}:{cfg.port} timed out after {cfg.connect_timeout_s}s"
            ) from exc
        except OSError as exc:
            raise RetryableDelivery(
                f"cannot connect to {cfg.host}:{cfg.port}: {exc.strerror or exc}"
            ) from exc
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._decoder = MLLPDecoder(FramingConfig(max_frame_bytes=self.config.max_frame_bytes))
        log.info("connection_opened", destination=self.name, host=cfg.host, port=cfg.port)

    async def aclose(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()

    async def _drop(self, reason: str) -> None:
        log.warning("connection_dropped", destination=self.name, reason=reason)
        if self._writer is not None:
            self._writer.transport.abort()
        self._writer = self._reader = None

    async def send(self, payload: bytes) -> str:
        cfg = self.config
        control_id = _fast_control_id(payload)
        if control_id is None:
            text, _codec = decode(payload, "utf-8")
            try:
                control_id = HL7Message.parse(text).control_id
            except HL7ParseError as exc:
                raise PermanentDelivery(f"payload is not HL7: {exc.reason}") from exc
        if self._writer is None or self._writer.is_closing():
            await self._connect()
        assert self._writer is not None and self._reader is not None
        try:
            self._writer.write(encode_frame(payload))
            await self._writer.drain()
            ack_raw = await self._read_ack(cfg.ack_timeout_s)
        except TimeoutError as exc:
            await self._drop("ack timeout")
            raise RetryableDelivery(
                f"no ACK within {cfg.ack_timeout_s}s; connection closed"
            ) from exc
        except (OSError, ConnectionError, EOFError) as exc:
            await self._drop("connection lost")
            raise RetryableDelivery(f"connection lost: {exc or type(exc).__name__}") from exc
        finally:
            if not cfg.keep_connection:
                await self.aclose()
        ack_text, _ = decode(ack_raw, "utf-8")
        try:
            ack = parse_ack(ack_text)
        except HL7ParseError as exc:
            await self._drop("unreadable response")
            raise RetryableDelivery(f"response is not an HL7 ACK: {exc.reason}") from exc
        if cfg.validate_control_id and ack.control_id != control_id:
            await self._drop("ack out of sequence")
            raise RetryableDelivery(
                f"ACK MSA-2 {ack.control_id!r} does not match MSH-10 {control_id!r}; "
                "connection closed"
            )
        detail = f"{ack.code}" + (f": {ack.text}" if ack.text else "")
        if ack.code in ("AA", "CA"):
            return ack.code
        if ack.code in ("AE", "CE"):
            if cfg.on_error == "fail":
                raise PermanentDelivery(f"peer answered {detail}")
            raise RetryableDelivery(f"peer answered {detail}")
        if ack.code in ("AR", "CR"):
            if cfg.on_reject == "retry":
                raise RetryableDelivery(f"peer answered {detail}")
            raise PermanentDelivery(f"peer answered {detail}")
        raise RetryableDelivery(f"unknown ACK code {ack.code!r}")

    async def _read_ack(self, timeout: float) -> bytes:  # noqa: ASYNC109 - per-call deadline
        assert self._reader is not None
        seen = bytearray()  # kept for the diagnostic when no frame ever comes
        try:
            async with asyncio.timeout(timeout):
                while True:
                    data = await self._reader.read(65536)
                    if not data:
                        raise EOFError("peer closed the connection before an ACK"
                                       + self._unframed_hint(seen))
                    if len(seen) < 4096:
                        seen += data[:4096]
                    try:
                        events = self._decoder.feed(data)
                    except FramingError as exc:
                        raise EOFError(f"unreadable response: {exc}") from exc
                    for ev in events:
                        if isinstance(ev, Frame):
                            return ev.payload
                        if isinstance(ev, FrameTooLarge):
                            raise EOFError(f"response larger than {ev.limit} bytes")
        except TimeoutError:
            hint = self._unframed_hint(seen)
            if hint:
                raise EOFError(f"no framed ACK within {timeout}s" + hint) from None
            raise

    def _unframed_hint(self, seen: bytearray) -> str:
        if not seen or self._decoder.in_frame:
            return ""
        return f" ({describe_unframed(bytes(seen))})"

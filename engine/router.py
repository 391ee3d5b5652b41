"""The per-channel pipeline: decode → parse → check → route → commit → ACK.

``ChannelPipeline.dispatch`` is what a source awaits for every inbound message. It never
raises for bad input: every outcome is an answer (AA/AE/AR or CA/CE/CR) and a stored
record. The message, its status and every delivery it creates are committed in one
transaction before the ACK is built and returned, so an ACKed message is never lost.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.channel import DispatchResult
from engine.errors import MessageRejected, StoreError
from engine.hl7 import (
    HL7Message,
    HL7ParseError,
    build_ack,
    codec_for,
    is_known_version,
    should_send_accept_ack,
    sniff_msh18,
)
from engine.hl7.ack import expected_ack_mode
from engine.logging import get_logger
from engine.metrics import Metrics
from engine.store.base import InboundRecord, NewDelivery, Store

log = get_logger("radbridge.router")

_ENHANCED = {"AA": "CA", "AE": "CE", "AR": "CR"}


def type_matches(message_type: str, patterns: Sequence[str]) -> bool:
    """``ORM^O01`` against patterns like ``ORM^O01``, ``ADT^*`` (empty list: everything)."""
    if not patterns:
        return True
    return any(fnmatch.fnmatchcase(message_type, p) for p in patterns)


def decode(raw: bytes, fallback: str) -> tuple[str, str]:
    """Text and codec: MSH-18 when present, else the fallback (utf-8 → latin-1)."""
    msh18 = sniff_msh18(raw)
    codec = codec_for(msh18, "") if msh18 else ""
    if codec:
        return raw.decode(codec, errors="replace"), codec
    try:
        return raw.decode(fallback), fallback
    except (UnicodeDecodeError, LookupError):
        return raw.decode("latin-1"), "latin-1"


@dataclass(slots=True)
class Route:
    """One destination of a channel, as the pipeline sees it."""

    queue_name: str
    message_types: list[str]
    ordering: str
    order_key: str
    notify: Callable[[], None]


@dataclass(slots=True)
class PipelineSettings:
    accept_message_types: list[str] = field(default_factory=list)
    charset_fallback: str = "utf-8"
    validation: str = "off"
    filtered_ack: str = "AA"
    revision: str = ""


class ChannelPipeline:
    """Everything that happens to one inbound message of one channel."""

    def __init__(
        self,
        channel: str,
        settings: PipelineSettings,
        routes: list[Route],
        store: Store,
        metrics: Metrics,
    ) -> None:
        self.channel = channel
        self.settings = settings
        self.routes = routes
        self.store = store
        self.metrics = metrics

    async def dispatch(self, raw: bytes, peer: str) -> DispatchResult:
        t0 = time.perf_counter()
        self.metrics.received.labels(self.channel).inc()
        text, codec = decode(raw, self.settings.charset_fallback)
        record = InboundRecord(
            channel=self.channel, raw=raw, received_at=time.time(), peer=peer, charset=codec,
            revision=self.settings.revision,
        )
        msg: HL7Message | None = None
        deliveries: list[NewDelivery] = []
        try:
            msg = HL7Message.parse(text)
            record.control_id = msg.control_id
            record.message_type = msg.message_type
            record.version = msg.version
            self._check(msg)
            if self.settings.validation != "off":
                await self._validate(msg, text, record)
            deliveries = self._route(msg, raw)
            code, reason = "AA", ""
            record.status = "processed"
        except HL7ParseError as exc:
            code, reason, err_code, loc = "AR", exc.reason, exc.error_code, ""
            record.status, record.error = "rejected", exc.reason
        except MessageRejected as exc:
            code, reason, err_code, loc = exc.code, exc.reason, exc.error_code, exc.location
            record.status, record.error = "rejected", exc.reason
        if code == "AA":
            err_code, loc = "", ""
        enhanced = msg is not None and expected_ack_mode(msg) == "enhanced"
        wire_code = _ENHANCED[code] if enhanced else code
        record.ack_code = wire_code
        try:
            record_id = await self.store.ingest(record, deliveries)
        except StoreError as exc:
            log.error("message_store_failed", channel=self.channel, error=str(exc))
            wire_code = "CE" if enhanced else "AE"
            ack = build_ack(msg, wire_code, text="message could not be stored; resend later",
                            error_code="207")
            self.metrics.nacked.labels(self.channel, wire_code).inc()
            return DispatchResult(False, ack.encode(codec or "latin-1", errors="replace"),
                                  None, wire_code, "store failed")
        for route in self.routes:
            route.notify()
        ack_bytes = b""
        if msg is None or should_send_accept_ack(msg, code == "AA"):
            ack = build_ack(msg, wire_code, text=reason, error_code=err_code, error_location=loc)
            ack_bytes = ack.encode(codec or "latin-1", errors="replace")
        if code == "AA":
            self.metrics.acked.labels(self.channel).inc()
        else:
            self.metrics.nacked.labels(self.channel, wire_code).inc()
        log.info(
            "message_processed" if code == "AA" else "message_rejected",
            channel=self.channel, message_id=record_id, control_id=record.control_id,
            message_type=record.message_type, status=record.status, ack_code=wire_code,
            reason=reason or None, peer=peer,
            duration_ms=round((time.perf_counter() - t0) * 1000, 3),
        )
        return DispatchResult(code == "AA", ack_bytes, record_id, wire_code, reason)

    def _check(self, msg: HL7Message) -> None:
        if not is_known_version(msg.version):
            raise MessageRejected(
                f"unsupported HL7 version {msg.version!r} in MSH-12",
                code="AR", error_code="203", location="MSH^1^12",
            )
        if not type_matches(msg.message_type, self.settings.accept_message_types):
            raise MessageRejected(
                f"message type {msg.message_type} is not accepted by channel {self.channel}",
                code="AR", error_code="200", location="MSH^1^9",
            )
        if not msg.control_id:
            raise MessageRejected(
                "MSH-10 message control id is empty", code="AR", error_code="101",
                location="MSH^1^10",
            )

    async def _validate(self, msg: HL7Message, text: str, record: InboundRecord) -> None:
        from engine.hl7.reference import validate_structure

        problems: list[str] = await asyncio.to_thread(validate_structure, text)
        if not problems:
            return
        if self.settings.validation == "strict":
            raise MessageRejected("structure: " + "; ".join(problems[:5]), code="AE",
                                  error_code="100")
        record.warnings.extend(f"structure: {p}" for p in problems)

    def _route(self, msg: HL7Message, raw: bytes) -> list[NewDelivery]:
        out: list[NewDelivery] = []
        for route in self.routes:
            if not type_matches(msg.message_type, route.message_types):
                continue
            key = msg.get(route.order_key) if route.ordering == "key" else ""
            out.append(NewDelivery(route.queue_name, raw, key))
        return out


def describe(result: DispatchResult) -> dict[str, Any]:
    return {"code": result.code, "reason": result.reason, "message_id": result.message_id}

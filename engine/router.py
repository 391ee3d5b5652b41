"""The per-channel pipeline: decode → parse → check → map → route → commit → ACK.

``ChannelPipeline.dispatch`` is what a source awaits for every inbound message. It never
raises for bad input: every outcome is an answer (AA/AE/AR or CA/CE/CR) and a stored
record. The message, its status and every delivery it creates are committed in one
transaction before the ACK is built and returned, so an ACKed message is never lost.

``evaluate`` is the pure part (no store, no network): the what-if replay runs stored
messages through it under two configurations and compares the outcomes.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.channel import DispatchResult, Reply
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
from engine.hl7.ack import _fast_accept_ack, expected_ack_mode, wants_ack
from engine.hl7.ids import new_control_id
from engine.hl7.versions import KNOWN_VERSIONS
from engine.logging import EventLine, get_logger
from engine.metrics import Metrics
from engine.store.base import InboundRecord, NewDelivery, Store

log = get_logger("radbridge.router")
# The one summary line per message (allow-listed keys only, see engine.logging).
_summary = EventLine(
    "radbridge.router",
    ("channel", "message_id", "control_id", "message_type", "status", "ack_code", "reason",
     "peer", "duration_ms"),
)

_ENHANCED = {"AA": "CA", "AE": "CE", "AR": "CR"}
# Codecs in which ASCII text encodes to the same bytes (ACK fast path).
_ASCII_COMPATIBLE = frozenset(
    {"ascii", "utf-8", "latin-1", *(f"iso8859-{n}" for n in (*range(1, 10), 15))}
)


def type_matches(message_type: str, patterns: Sequence[str]) -> bool:
    """``ORM^O01`` against patterns like ``ORM^O01``, ``ADT^*`` (empty list: everything)."""
    if not patterns:
        return True
    return any(fnmatch.fnmatchcase(message_type, p) for p in patterns)


_CODECS: dict[str, str] = {}
_KNOWN_VERSIONS = frozenset(KNOWN_VERSIONS)
_SNIFF_WINDOW = 1 << 16  # sniff_msh18 reads MSH-18 within the first 64 KiB


def _type_matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
    pats = list(patterns)
    return lambda message_type: type_matches(message_type, pats)


def _msh18_codec(msh18: str) -> str:
    """The codec an MSH-18 value names ("" when absent or unknown), cached."""
    if not msh18:
        return ""
    codec = _CODECS.get(msh18)
    if codec is None:
        codec = codec_for(msh18, "")
        if len(_CODECS) < 256:
            _CODECS[msh18] = codec
    return codec


def decode(raw: bytes, fallback: str) -> tuple[str, str]:
    """Text and codec: MSH-18 when present, else the fallback (utf-8 → latin-1)."""
    codec = _msh18_codec(sniff_msh18(raw))
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
    name: str = ""
    mapping: Any = None  # transforms.Mapping producing this destination's payload
    charset: str | None = None  # HL7 table 0211 value for the outbound payload
    effect: Any = None  # an internal destination applied in the ingest transaction


@dataclass(slots=True)
class PipelineSettings:
    accept_message_types: list[str] = field(default_factory=list)
    charset_fallback: str = "utf-8"
    validation: str = "off"
    filtered_ack: str = "AA"
    revision: str = ""
    mapping: Any = None  # channel-level transforms.Mapping: filter / reject / route


@dataclass(frozen=True, slots=True)
class Filtered:
    """A destination's mapping dropped the message (what-if output marker)."""

    reason: str


@dataclass(slots=True)
class Evaluation:
    """What would happen to one message, before anything is stored or sent."""

    code: str = "AA"  # original-mode ACK code
    codec: str = ""
    status: str = "processed"
    reason: str = ""
    error_code: str = ""
    location: str = ""
    msg: HL7Message | None = None
    deliveries: list[NewDelivery] = field(default_factory=list)
    effects: list[Any] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # destination → payload or record
    warnings: list[str] = field(default_factory=list)
    # MSH-10, MSH-9 and MSH-12 as read once by the check (empty when unparsed).
    control_id: str = ""
    message_type: str = ""
    version: str = ""


class ChannelPipeline:
    """Everything that happens to one inbound message of one channel."""

    def __init__(
        self,
        channel: str,
        settings: PipelineSettings,
        routes: list[Route],
        store: Store | None,
        metrics: Metrics,
    ) -> None:
        self.channel = channel
        self.settings = settings
        self.routes = routes
        self.store = store
        self.metrics = metrics
        # Labelled children looked up once (the label lookup costs more than the inc).
        self._received = metrics.received.labels(channel)
        self._acked = metrics.acked.labels(channel)
        self._nacked: dict[str, Any] = {}
        self._filtered: Any = None
        self._accept: Callable[[str], bool] = _type_matcher(settings.accept_message_types)
        self._type_ok: dict[str, bool] = {}
        # The lean path (``_lean``): nothing but MSH is needed when there is no
        # validation, no channel mapping and every route just queues the raw bytes.
        self._lean_ok = (settings.validation == "off" and settings.mapping is None
                         and all(r.mapping is None and r.effect is None for r in routes))
        self._routes_for: dict[str, list[Route]] = {}

    def _nack(self, code: str) -> None:
        child = self._nacked.get(code)
        if child is None:
            child = self._nacked[code] = self.metrics.nacked.labels(self.channel, code)
        child.inc()

    async def evaluate(self, raw: bytes) -> Evaluation:
        """Decode, parse, check and map ``raw``; no side effects."""
        if self.settings.validation == "off":
            return self._evaluate(raw)[0]
        return await self._evaluate_validated(raw)

    def _evaluate(self, raw: bytes, *, route: bool = True) -> tuple[Evaluation, str]:
        """Decode, parse, check and (unless ``route`` is False) map and route."""
        text, codec = decode(raw, self.settings.charset_fallback)
        ev = Evaluation(codec=codec)
        try:
            msg = ev.msg = HL7Message.parse(text)
            self._check(msg, ev)
            if route:
                self._route(msg, raw, ev)
        except HL7ParseError as exc:
            ev.code, ev.status, ev.reason, ev.error_code = "AR", "rejected", exc.reason, \
                exc.error_code
            ev.location = getattr(exc, "location", "")
        except MessageRejected as exc:
            _reject(ev, exc)
        if ev.status == "rejected":
            ev.deliveries, ev.effects, ev.outputs = [], [], {}
        return ev, text

    async def _evaluate_validated(self, raw: bytes) -> Evaluation:
        ev, text = self._evaluate(raw, route=False)
        if ev.status == "rejected" or ev.msg is None:
            return ev
        try:
            await self._validate(text, ev)
            self._route(ev.msg, raw, ev)
        except MessageRejected as exc:
            _reject(ev, exc)
            ev.deliveries, ev.effects, ev.outputs = [], [], {}
        return ev

    async def dispatch(self, raw: bytes, peer: str) -> DispatchResult:
        t0 = time.perf_counter()
        self._received.value += 1
        lean = self._lean(raw) if self._lean_ok else None
        if lean is not None:
            # Commit and answer a message ``_lean`` accepted: the same outcome as the
            # general path (status processed, AA/CA, one delivery per matching route).
            parsed, codec, _, _, _, enhanced, deliveries, ack = lean
            if self.store is None:
                raise StoreError("pipeline has no store")
            record = self._lean_record(raw, peer, lean)
            try:
                record_id, rejection = await self.store.ingest_nowait(record, deliveries)
            except StoreError as exc:
                return self._store_failed(exc, parsed, enhanced, codec)
            if rejection is not None:  # pragma: no cover - only effects reject
                raise StoreError("unexpected rejection without effects")
            self._lean_processed(record_id, record, bool(deliveries), t0)
            return DispatchResult(True, ack, record_id, record.ack_code, "")
        ev = self._evaluate(raw)[0] if self.settings.validation == "off" \
            else await self._evaluate_validated(raw)
        msg = ev.msg
        enhanced = msg is not None and expected_ack_mode(msg) == "enhanced"
        code = ev.code
        status = ev.status
        if status == "filtered":
            code = self.settings.filtered_ack
        wire_code = _ENHANCED[code] if enhanced else code
        record = InboundRecord(
            channel=self.channel, raw=raw, received_at=time.time(), peer=peer,
            charset=ev.codec,
            revision=self.settings.revision, status=status,  # type: ignore[arg-type]
            ack_code=wire_code, error=ev.reason if status != "processed" else "",
            warnings=ev.warnings,
        )
        if ev.control_id:  # read by the check
            record.control_id = ev.control_id
            record.message_type = ev.message_type
            record.version = ev.version
        elif msg is not None:
            record.control_id = msg.control_id
            record.message_type = msg.message_type
            record.version = msg.version
        codec = record.charset or "latin-1"
        if self.store is None:
            raise StoreError("pipeline has no store")
        # The ACK this message gets unless the commit says otherwise, built before the
        # commit is awaited (it overlaps the fsync); only sent once the commit is done.
        ok = status != "rejected"
        ack_bytes = self._ack(msg, ok, wire_code, ev) if not ev.effects else None
        try:
            record_id, rejection = await self.store.ingest(record, ev.deliveries, ev.effects)
        except StoreError as exc:
            return self._store_failed(exc, msg, enhanced, codec)
        if rejection is not None:  # an internal destination refused it inside the transaction
            code, ev.status, ev.reason = rejection.code, "rejected", rejection.reason
            ev.error_code, ev.location = rejection.error_code, rejection.location
            wire_code = _ENHANCED[code] if enhanced else code
            status, ok, ack_bytes = "rejected", False, None
        elif ev.deliveries:
            for route in self.routes:
                route.notify()
        if ack_bytes is None:
            ack_bytes = self._ack(msg, ok, wire_code, ev)
        if status == "filtered":
            if self._filtered is None:
                self._filtered = self.metrics.filtered.labels(self.channel)
            self._filtered.inc()
        if ok:
            self._acked.value += 1
        else:
            self._nack(wire_code)
        _summary.emit(
            "message_processed" if ok else "message_rejected",
            self.channel, record_id, record.control_id, record.message_type, status,
            wire_code, ev.reason or None, peer,
            round((time.perf_counter() - t0) * 1000, 3),
        )
        return DispatchResult(ok, ack_bytes, record_id, wire_code, ev.reason)

    def submit(self, raw: bytes, peer: str, reply: Reply) -> bool:
        """The fast lane (``engine.channel.Submit``): a message ``_lean`` accepts is
        queued for the commit and answered by ``reply`` from the store's batch
        completion, with the same record, deliveries, ACK, metrics and summary line as
        ``dispatch`` (no coroutine, future or task per message). False, having done
        nothing, for anything else: the source then awaits ``dispatch``."""
        store = self.store
        if not self._lean_ok or store is None:
            return False
        t0 = time.perf_counter()
        lean = self._lean(raw)
        if lean is None:
            return False
        parsed, _, _, _, _, _, deliveries, ack = lean
        record = self._lean_record(raw, peer, lean)
        answer = _Answer(self, reply, ack, t0, record, parsed, bool(deliveries))
        try:
            store.ingest_then(record, deliveries, answer)
        except StoreError:
            return False  # dispatch answers it (AE, "could not be stored")
        self._received.value += 1
        return True

    def _lean_record(self, raw: bytes, peer: str, lean: tuple[Any, ...]) -> InboundRecord:
        """The stored record of a message ``_lean`` accepted (status processed)."""
        _, codec, mtype, cid, version, enhanced, _, _ = lean
        return InboundRecord(
            self.channel, raw, time.time(), peer, cid, mtype, version, codec,
            "processed", "CA" if enhanced else "AA", "", self.settings.revision,
        )

    def _lean_processed(self, record_id: int, rec: InboundRecord, notify: bool,
                        t0: float) -> None:
        """After the commit of a lean message: wake the delivery workers, count, log."""
        if notify:
            for route in self.routes:
                route.notify()
        self._acked.value += 1
        _summary.emit(
            "message_processed", self.channel, record_id, rec.control_id, rec.message_type,
            "processed", rec.ack_code, None, rec.peer,
            round((time.perf_counter() - t0) * 1000, 3),
        )

    def _lean(self, raw: bytes) -> tuple[HL7Message, str, str, str, str, bool,
                                          list[NewDelivery], bytes] | None:
        """The common case without an ``Evaluation``: decode, parse (segments are split
        only when read), the MSH checks and the routes by type. ``None`` when the message
        is not plainly acceptable: the general path then answers it (and says why)."""
        if raw.startswith(b"MSH|") and len(raw) < _SNIFF_WINDOW and raw.isascii():
            # ASCII text reads the same in every ASCII-compatible codec: parse first, then
            # take MSH-18 from the parsed header (what ``sniff_msh18`` would have read).
            try:
                msg = HL7Message(raw.decode("ascii"))
            except HL7ParseError:
                return None
            f = msg._fields[0]
            msh18 = f[18] if f is not None and len(f) > 18 else ""
            if msh18:
                d = msg.delimiters
                msh18 = msh18.split(d.repetition, 1)[0].split(d.component, 1)[0].strip()
            codec = _msh18_codec(msh18) or self.settings.charset_fallback
            if codec not in _ASCII_COMPATIBLE:
                return None
        else:
            text, codec = decode(raw, self.settings.charset_fallback)
            try:
                msg = HL7Message(text)
            except HL7ParseError:
                return None
        mtype, cid, version, accept, app = msg.key_fields()
        if not self._type_ok.get(mtype) or not cid or version not in _KNOWN_VERSIONS:
            return None  # (a type not seen yet is cached by the general path's check)
        routes = self._routes_for.get(mtype)
        if routes is None:
            routes = [r for r in self.routes if type_matches(mtype, r.message_types)]
            if len(self._routes_for) < 1024:
                self._routes_for[mtype] = routes
        deliveries = [
            NewDelivery(r.queue_name, raw, msg.get(r.order_key) if r.ordering == "key" else "")
            for r in routes
        ] if routes else []
        if accept and not wants_ack(accept, True):
            ack = b""  # MSH-15 asks for no accept ACK on success
        else:
            code = "CA" if (accept or app) else "AA"
            ack_text = _fast_accept_ack(msg, code, new_control_id()) or build_ack(msg, code)
            ack = ack_text.encode("ascii") if codec in _ASCII_COMPATIBLE and ack_text.isascii() \
                else ack_text.encode(codec, errors="replace")
        return msg, codec, mtype, cid, version, bool(accept or app), deliveries, ack

    def _store_failed(self, exc: StoreError, msg: HL7Message | None, enhanced: bool,
                      codec: str) -> DispatchResult:
        log.error("message_store_failed", channel=self.channel, error=str(exc))
        wire_code = "CE" if enhanced else "AE"
        ack = build_ack(msg, wire_code, text="message could not be stored; resend later",
                        error_code="207")
        self._nack(wire_code)
        return DispatchResult(False, ack.encode(codec, errors="replace"),
                              None, wire_code, "store failed")

    @staticmethod
    def _ack(msg: HL7Message | None, ok: bool, wire_code: str, ev: Evaluation) -> bytes:
        if msg is not None and not should_send_accept_ack(msg, ok):
            return b""
        ack = build_ack(msg, wire_code, text=ev.reason,
                        error_code="" if ok else ev.error_code,
                        error_location="" if ok else ev.location)
        codec = ev.codec or "latin-1"
        if codec in _ASCII_COMPATIBLE and ack.isascii():
            return ack.encode("ascii")
        return ack.encode(codec, errors="replace")

    def _check(self, msg: HL7Message, ev: Evaluation | None = None) -> None:
        version = msg.version
        if not is_known_version(version):
            raise MessageRejected(
                f"unsupported HL7 version {version!r} in MSH-12",
                code="AR", error_code="203", location="MSH^1^12",
            )
        mtype = msg.message_type
        accepted = self._type_ok.get(mtype)
        if accepted is None:
            accepted = self._accept(mtype)
            if len(self._type_ok) < 1024:
                self._type_ok[mtype] = accepted
        if not accepted:
            raise MessageRejected(
                f"message type {mtype} is not accepted by channel {self.channel}",
                code="AR", error_code="200", location="MSH^1^9",
            )
        control_id = msg.control_id
        if not control_id:
            raise MessageRejected(
                "MSH-10 message control id is empty", code="AR", error_code="101",
                location="MSH^1^10",
            )
        if ev is not None:
            ev.version, ev.message_type, ev.control_id = version, mtype, control_id

    async def _validate(self, text: str, ev: Evaluation) -> None:
        from engine.hl7.reference import validate_structure

        problems: list[str] = await asyncio.to_thread(validate_structure, text)
        if not problems:
            return
        if self.settings.validation == "strict":
            raise MessageRejected("structure: " + "; ".join(problems[:5]), code="AE",
                                  error_code="100")
        ev.warnings.extend(f"structure: {p}" for p in problems)

    def _route(self, msg: HL7Message, raw: bytes, ev: Evaluation) -> None:
        wanted: set[str] | None = None
        if self.settings.mapping is not None:
            res = self.settings.mapping.run(msg)
            ev.warnings.extend(res.warnings)
            if res.status == "rejected":
                raise res.to_rejection()
            if res.status == "filtered":
                ev.status, ev.reason = "filtered", res.reason
                return
            if res.routes is not None:
                wanted = set(res.routes)
            if res.output is not None and not isinstance(res.output, dict):
                raw = res.encode()
        for route in self.routes:
            if wanted is not None and route.name not in wanted:
                continue
            if not type_matches(msg.message_type, route.message_types):
                continue
            payload: Any = raw
            if route.mapping is not None:
                res = route.mapping.run(msg)
                ev.warnings.extend(f"{route.name}: {w}" for w in res.warnings)
                if res.status == "rejected":
                    raise res.to_rejection()
                if res.status == "filtered":
                    ev.outputs[route.name] = Filtered(res.reason)
                    continue
                payload = res.output if isinstance(res.output, dict) else \
                    res.encode(route.charset)
            if route.effect is not None:
                prepared = route.effect.prepare(msg, payload)
                ev.outputs[route.name] = prepared.output
                ev.warnings.extend(f"{route.name}: {w}" for w in prepared.warnings)
                if prepared.effect is not None:
                    ev.effects.append(prepared.effect)
                continue
            ev.outputs[route.name] = payload
            key = msg.get(route.order_key) if route.ordering == "key" else ""
            ev.deliveries.append(NewDelivery(route.queue_name, payload, key))


class _Answer:
    """One fast-lane message waiting for its commit: ``Store.ingest_then`` completes it
    on the loop (duck-typed like a future). Never raises into the store's batch."""

    __slots__ = ("ack", "notify", "parsed", "pipe", "record", "reply", "t0")

    def __init__(self, pipe: ChannelPipeline, reply: Reply, ack: bytes, t0: float,
                 record: InboundRecord, parsed: HL7Message, notify: bool) -> None:
        self.pipe = pipe
        self.reply = reply
        self.ack = ack
        self.t0 = t0
        self.record = record
        self.parsed = parsed
        self.notify = notify

    def done(self) -> bool:
        return False  # completed exactly once, by the batch that holds it

    def set_result(self, value: tuple[int, MessageRejected | None]) -> None:
        self._send(self.ack)  # first: the sender waits for it, the log line does not
        try:
            self.pipe._lean_processed(value[0], self.record, self.notify, self.t0)
        except Exception:  # pragma: no cover - logging/metrics must not stop the batch
            log.exception("answer_failed", channel=self.pipe.channel)

    def set_exception(self, exc: BaseException) -> None:
        pipe, rec = self.pipe, self.record
        try:
            if isinstance(exc, StoreError):
                ack = pipe._store_failed(exc, self.parsed, rec.ack_code == "CA",
                                         rec.charset).ack
            else:
                log.error("dispatch_failed", channel=pipe.channel, error=repr(exc))
                ack = build_ack(self.parsed, "CE" if rec.ack_code == "CA" else "AE",
                                text="internal error; message not accepted",
                                error_code="207").encode(rec.charset, errors="replace")
        except Exception:  # pragma: no cover - last resort: still answer
            log.exception("answer_failed", channel=pipe.channel)
            ack = build_ack(None, "AE", text="internal error", error_code="207").encode()
        self._send(ack)

    def _send(self, ack: bytes) -> None:
        try:
            self.reply(ack)
        except Exception:  # pragma: no cover - a source's reply must not break the batch
            log.exception("reply_failed", channel=self.pipe.channel)


def _reject(ev: Evaluation, exc: MessageRejected) -> None:
    ev.code, ev.status, ev.reason = exc.code, "rejected", exc.reason
    ev.error_code, ev.location = exc.error_code, exc.location

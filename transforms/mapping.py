"""A compiled mapping (``Mapping``) and what one run of it gives (``MappingResult``).

``Mapping.run`` never raises for bad input: an unparseable message, a ``reject`` step, a
missing required value, an overlong value under the ``reject`` policy, a lookup miss
without default or an unexpected failure of a step all come back as
``status="rejected"`` with a reason, an HL7 table 0357 error code and, where known, an
ERR-2 location (``OBR^1^18``).  Reasons and warnings hold names, lengths and at most the
code a lookup table missed — never names, IDs or dates — so they are safe to log and to
put in MSA-3 (as long as tables are keyed by codes).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from engine.errors import MessageRejected
from engine.hl7 import (
    HL7Message,
    HL7ParseError,
    codec_for,
    decode_message,
    encode_text,
    new_control_id,
)
from transforms.errors import Filtered, Rejected
from transforms.hl7_values import chars_of, scope_of
from transforms.misses import LookupMissRegistry
from transforms.runtime import Run, StepFn
from transforms.step_blocks import run_steps
from transforms.tables import LookupTable

__all__ = ["CONTROL_ID_PLACEHOLDER", "Mapping", "MappingResult", "Status"]

Status = Literal["ok", "filtered", "rejected"]
#: stands in for an empty MSH-10 in a template; replaced by a fresh control id per run
CONTROL_ID_PLACEHOLDER = "RADBRIDGE-NEW-CONTROL-ID"


@dataclass(frozen=True, slots=True)
class MappingResult:
    """The outcome of one run.

    ``output`` is the record (a dict) or the outbound ``HL7Message`` when ``status`` is
    ``"ok"``, else ``None``.  ``routes`` is ``None`` when no ``route`` step ran (deliver as
    the channel's destinations say), otherwise the destinations chosen, in order.
    ``ack_code`` is the acknowledgement a rejection deserves: ``AE`` (application
    error) or ``AR`` (the input could not even be parsed).
    """

    status: Status
    output: dict[str, Any] | HL7Message | None = None
    reason: str = ""
    error_code: str = ""
    location: str = ""
    ack_code: str = ""
    routes: tuple[str, ...] | None = None
    warnings: tuple[str, ...] = ()
    mapping: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def record(self) -> dict[str, Any]:
        """The record output (raises ``TypeError`` for HL7 output or when not ok)."""
        if not isinstance(self.output, dict):
            raise TypeError(f"mapping {self.mapping!r} gave no record ({self.status})")
        return self.output

    @property
    def message(self) -> HL7Message:
        """The HL7 output (raises ``TypeError`` for record output or when not ok)."""
        if not isinstance(self.output, HL7Message):
            raise TypeError(f"mapping {self.mapping!r} gave no HL7 message ({self.status})")
        return self.output

    def encode(self, charset: str | None = None) -> bytes:
        """The HL7 output as bytes, segments ended by CR.

        ``charset`` is an HL7 table 0211 value (``8859/1``) or a Python codec name; by
        default the output's own MSH-18 (empty: ASCII).  Characters the charset cannot
        hold are written as HL7 ``\\Xhh\\`` escapes (``encode_text(errors="hl7")``).
        """
        msg = self.message
        declared = charset if charset is not None else msg.charset
        codec = codec_for(declared, declared or "ascii")
        return encode_text(msg.encode("\r", trailing=True), codec, errors="hl7",
                           escape_char=msg.delimiters.escape or "\\")

    def to_rejection(self) -> MessageRejected:
        """The engine's ``MessageRejected`` for a rejected result."""
        return MessageRejected(self.reason, code=self.ack_code or "AE",
                               error_code=self.error_code or "207", location=self.location)


@dataclass
class Mapping:
    """A loaded mapping: ``run(message_or_record) -> MappingResult``."""

    name: str
    path: str
    input: str
    output: str
    steps: list[tuple[str, StepFn]]
    description: str = ""
    template: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, LookupTable] = field(default_factory=dict)
    misses: LookupMissRegistry | None = None
    hl7_versions: tuple[str, ...] = ()

    def run(self, data: str | bytes | HL7Message | dict[str, Any]) -> MappingResult:
        """Run every step on one input: HL7 text/bytes/``HL7Message`` or a record dict."""
        run = Run(self.name)
        if self.input == "hl7":
            msg = _as_message(data)
            if isinstance(msg, MappingResult):
                return replace(msg, mapping=self.name)
            run.msg = msg
            run.delimiters = msg.delimiters
            run.chars = chars_of(msg.delimiters)
            run.scope, run.fields = run.top = scope_of(msg.segments())
        else:
            if not isinstance(data, dict):
                raise TypeError(f"mapping {self.name!r} reads a record (a dict), "
                                f"not {type(data).__name__}")
            run.record = data
        if self.output == "hl7":
            assert self.template is not None
            run.out = HL7Message.parse(self.template)
        else:
            run.out = run.target = {}
        try:
            run_steps(self.steps, run)
        except Rejected as exc:
            return MappingResult("rejected", None, exc.reason, exc.error_code, exc.location,
                                 "AE", None, tuple(run.warnings), self.name)
        except Filtered as exc:
            return MappingResult("filtered", None, exc.reason, routes=None,
                                 warnings=tuple(run.warnings), mapping=self.name)
        if self.output == "hl7":
            _stamp(run.out)
        routes = tuple(run.routes) if run.routes is not None else None
        return MappingResult("ok", run.out, routes=routes, warnings=tuple(run.warnings),
                             mapping=self.name)


def _as_message(data: Any) -> HL7Message | MappingResult:
    if isinstance(data, HL7Message):
        return data
    if isinstance(data, bytes):
        data = decode_message(data).text
    if not isinstance(data, str):
        raise TypeError(f"an HL7 mapping reads HL7 text, bytes or HL7Message, "
                        f"not {type(data).__name__}")
    try:
        return HL7Message.parse(data)
    except HL7ParseError as exc:
        return MappingResult("rejected", None, exc.reason, exc.error_code, exc.location, "AR")


def _stamp(msg: HL7Message) -> None:
    """Fill MSH-7 (now) and MSH-10 (a new control id) when the steps left them empty."""
    if not msg.get("MSH-7"):
        from datetime import datetime

        msg.set("MSH-7", datetime.now().strftime("%Y%m%d%H%M%S"))
    if msg.get("MSH-10") in ("", CONTROL_ID_PLACEHOLDER):
        msg.set("MSH-10", new_control_id())

"""Reading acknowledgements: ``parse_ack`` turns any message with an MSA into ``AckInfo``."""

from __future__ import annotations

from typing import NamedTuple

from engine.hl7.errors import HL7ParseError
from engine.hl7.message import HL7Message
from engine.hl7.segment import Segment

__all__ = ["AckInfo", "parse_ack"]


class AckInfo(NamedTuple):
    """MSA-1 ``code``, MSA-2 ``control_id``, MSA-3 ``text``, an ERR summary and MSH-9."""

    code: str
    control_id: str
    text: str
    error: str
    message_type: str

    @property
    def accepted(self) -> bool:
        """True for AA/CA."""
        return self.code in ("AA", "CA")


def _summary(code: str, code_text: str, location: str, message: str) -> str:
    out = " ".join(p for p in (code, code_text) if p)
    if location:
        out = f"{out} at {location}" if out else f"at {location}"
    if message:
        out = f"{out}: {message}" if out else message
    return out


def _err_summaries(seg: Segment, comp: str) -> list[str]:
    out: list[str] = []
    loc = seg.get(2).replace(comp, "^")
    new_style = _summary(seg.get(3, comp=1), seg.get(3, comp=2), loc, seg.get(8))
    if new_style:
        out.append(new_style)
    for i in range(len(seg.get_all(1))):  # 2.1-2.4 ERR-1 (ELD), repeating
        eld_loc = "^".join(p for p in (seg.get(1, i + 1, c) for c in (1, 2, 3)) if p)
        s = _summary(seg.get(1, i + 1, 4, 1), seg.get(1, i + 1, 4, 2), eld_loc, "")
        if s:
            out.append(s)
    return out


def parse_ack(text: str) -> AckInfo:
    """Parse an ACK (or any response with an MSA, e.g. ADR^A19).

    Raises ``HL7ParseError`` when the text is not a message or has no MSA segment.
    """
    msg = HL7Message.parse(text)
    msa = msg.segment("MSA")
    if msa is None:
        raise HL7ParseError(
            f"{msg.message_type or 'message'} has no MSA segment: not an acknowledgement",
            "100",
            "MSA^1",
        )
    comp = msg.delimiters.component
    errors = [s for seg in msg.segments("ERR") for s in _err_summaries(seg, comp)]
    return AckInfo(
        code=msa.get(1, comp=1),
        control_id=msa.get(2),
        text=msa.get(3),
        error="; ".join(errors),
        message_type=msg.message_type,
    )

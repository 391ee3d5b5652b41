"""Building acknowledgements (original AA/AE/AR and enhanced CA/CE/CR) and ACK policy.

ERR layout, chosen by the inbound MSH-12: v2.5 and later (and unknown versions)
get ``ERR||<ERR-2 location>|<code>^<text>^HL70357|E||||<ERR-8 user message>``;
2.1-2.4 get ``ERR|<seg>^<seq>^<field>^<code>&<text>&HL70357`` (ERR-1, ELD).  The
free text also goes to MSA-3 for every version, since most receivers show that.
Segments are joined with ``\\r``; no trailing terminator and no MLLP framing.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Literal

from engine.hl7.delimiters import DEFAULT_DELIMITERS, Delimiters
from engine.hl7.errors import ERROR_CODE_TEXT
from engine.hl7.escaping import escape
from engine.hl7.ids import new_control_id
from engine.hl7.message import HL7Message
from engine.hl7.paths import compile_path
from engine.hl7.versions import version_tuple

__all__ = [
    "AckMode",
    "build_ack",
    "expected_ack_mode",
    "new_control_id",
    "should_send_accept_ack",
    "should_send_application_ack",
]

AckMode = Literal["original", "enhanced"]
ACK_CODES = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})
_ERROR_ACKS = frozenset({"AE", "AR", "CE", "CR"})
_PATH_LIKE = re.compile(r"[A-Z0-9]{3}(?:\[[0-9]+\])?-[0-9]")
_SALVAGE_MAX = 64


_ts_second = -1
_ts_text = ""


def _timestamp(now: datetime | None) -> str:
    if now is None:  # local time, no offset (as datetime.now()); cached per second
        global _ts_second, _ts_text
        sec = int(time.time())
        if sec != _ts_second:
            _ts_text = time.strftime("%Y%m%d%H%M%S", time.localtime(sec))
            _ts_second = sec
        return _ts_text
    ts = now.strftime("%Y%m%d%H%M%S")
    return ts + now.strftime("%z") if now.tzinfo is not None else ts


# Accept ACKs (no text, no ERR) of the same inbound header differ only in timestamp,
# control id and MSA-2: (MSH-1, -2, -3, -4, -5, -6, -9, -11, -12, -18) → the parts.
_TEMPLATES: dict[tuple[str, ...], tuple[str, str, str, str]] = {}
_TEMPLATES_MAX = 1024


def _fast_accept_ack(msg: HL7Message, code: str, cid: str) -> str | None:
    f = msg._field_list(0)
    if len(f) < 13:
        return None
    inbound_id = f[10]
    key = (f[1], f[2], f[3], f[4], f[5], f[6], f[9], f[11], f[12],
           f[18] if len(f) > 18 else "")
    parts = _TEMPLATES.get(key)
    if parts is None:
        placeholder = "\x00"
        text = _build(msg, "AA", "", "", "", None, placeholder)
        i = text.index(placeholder)
        j = text.index(placeholder, i + 1)
        msa = text.index("\rMSA" + msg.delimiters.field, j)
        head = text[:i]
        between = text[i + 1:j]
        tail = text[j + 1:msa] + "\rMSA" + msg.delimiters.field
        parts = (head, between, tail, msg.delimiters.field)
        if len(_TEMPLATES) >= _TEMPLATES_MAX:
            _TEMPLATES.clear()
        _TEMPLATES[key] = parts
    head, between, tail, fs = parts
    if not inbound_id:
        return f"{head}{_timestamp(None)}{between}{cid}{tail}{code}"
    return f"{head}{_timestamp(None)}{between}{cid}{tail}{code}{fs}{inbound_id}"


def _join(sep: str, items: list[str]) -> str:
    while items and not items[-1]:
        items.pop()
    return sep.join(items)


def _salvage(header: str | None) -> dict[int, str]:
    """Best-effort MSH-n values (ASCII only, escaped, first component) from a bad header."""
    if not header or not header.startswith("MSH") or len(header) < 5:
        return {}
    fs = header[3]
    if fs.isalnum() or fs.isspace():
        return {}
    line = header.replace("\n", "\r").split("\r", 1)[0]
    parts = line.split(fs)
    comp = parts[1][:1] if len(parts) > 1 and parts[1][:1] not in ("", fs) else "^"
    out: dict[int, str] = {}
    for n in (3, 4, 5, 6, 9, 10, 11, 12):
        if n - 1 < len(parts):
            comps = parts[n - 1].split(comp)
            value = comps[1] if n == 9 and len(comps) > 1 else comps[0]
            value = "".join(c for c in value if c.isascii() and c.isprintable())[:_SALVAGE_MAX]
            out[n] = escape(value, DEFAULT_DELIMITERS)
    return out


def _location(loc: str, d: Delimiters) -> list[str]:
    """ERL components from ``"OBR-18"``/``"OBR[2]-4.1"`` or ``"OBR^1^18"``."""
    if not loc:
        return []
    if _PATH_LIKE.match(loc):
        try:
            p = compile_path(loc)
        except ValueError:
            pass
        else:
            parts = [p.segment, str(p.occurrence or 1), str(p.field)]
            if p.repetition is not None or p.component is not None:
                parts.append(str(p.repetition or 1))
            if p.component is not None:
                parts.append(str(p.component))
                if p.subcomponent is not None:
                    parts.append(str(p.subcomponent))
            return parts
    return [escape(c, d) for c in loc.split("^")]


def _err_segment(
    version: str, d: Delimiters, error_code: str, location: str, text: str
) -> str:
    code = error_code or "207"
    code_text = escape(ERROR_CODE_TEXT.get(code, ""), d)
    loc = _location(location, d)
    vt = version_tuple(version)
    if vt is not None and vt < (2, 5):
        eld = [*loc[:3], "", "", ""][:3]
        ce = _join(d.subcomponent, [escape(code, d), code_text, "HL70357"])
        return _join(d.field, ["ERR", d.component.join([*eld, ce])])
    cwe = _join(d.component, [escape(code, d), code_text, "HL70357"])
    return _join(
        d.field, ["ERR", "", _join(d.component, loc), cwe, "E", "", "", "", escape(text, d)]
    )


def build_ack(
    msg: HL7Message | None,
    code: str,
    *,
    text: str = "",
    error_code: str = "",
    error_location: str = "",
    raw_fallback_header: str | None = None,
    now: datetime | None = None,
    control_id: str | None = None,
) -> str:
    """ACK text for ``msg`` (``None`` when the inbound message could not be parsed).

    Sender/receiver are swapped, MSH-1/2/11/12/18 copied (an unknown version is
    copied as is), MSA-2 echoes the inbound MSH-10 byte for byte.  On AE/AR/CE/CR
    an ERR segment carries ``error_code`` (table 0357, default ``207``),
    ``error_location`` (``"OBR-18"`` or ERL text ``"OBR^1^18"``) and ``text``.
    With ``msg=None`` a minimal v2.5.1 ACK from ``RADBRIDGE`` is built, salvaging
    sender, control id and version from ``raw_fallback_header`` (the inbound MSH
    line) when it looks like one.
    """
    if code not in ACK_CODES:
        raise ValueError(f"ACK code must be one of {sorted(ACK_CODES)}, not {code!r}")
    if (msg is not None and not text and now is None and control_id is None
            and code not in _ERROR_ACKS):
        fast = _fast_accept_ack(msg, code, new_control_id())
        if fast is not None:
            return fast
    return _build(msg, code, text, error_code, error_location, raw_fallback_header,
                  None, now, control_id)


def _build(
    msg: HL7Message | None, code: str, text: str, error_code: str, error_location: str,
    raw_fallback_header: str | None, ts: str | None = None, now: datetime | None = None,
    control_id: str | None = None,
) -> str:
    cid = control_id if control_id is not None else new_control_id()
    if ts is not None:  # template building: the same placeholder for time and id
        cid = ts
    if msg is not None:
        d = msg.delimiters
        header = msg.segment("MSH")
        assert header is not None
        mshf = header.fields

        def raw(n: int) -> str:
            return mshf[n] if n < len(mshf) else ""

        version = msg.version
        trigger = msg.get_encoded("MSH-9.2")
        sender = [raw(5), raw(6), raw(3), raw(4)]
        proc, vid, charset, inbound_id = raw(11), raw(12), raw(18), raw(10)
    else:
        d = DEFAULT_DELIMITERS
        s = _salvage(raw_fallback_header)
        version = s.get(12) or "2.5.1"
        trigger = s.get(9, "")
        sender = [s.get(5) or "RADBRIDGE", s.get(6, ""), s.get(3, ""), s.get(4, "")]
        proc, vid, charset, inbound_id = s.get(11) or "P", version, "", s.get(10, "")
    vt = version_tuple(version)
    msh9 = ["ACK", trigger] if vt is not None and vt < (2, 3, 1) else ["ACK", trigger, "ACK"]
    msh = [
        "MSH" + d.field + d.encoding_characters,
        *sender,
        ts if ts is not None else _timestamp(now),
        "",
        _join(d.component, msh9),
        cid if ts is not None else escape(cid, d),
        proc,
        vid,
        *([""] * 5),
        charset,
    ]
    segments = [
        _join(d.field, msh),
        _join(d.field, ["MSA", code, inbound_id, escape(text, d)]),
    ]
    if code in _ERROR_ACKS:
        segments.append(_err_segment(version, d, error_code, error_location, text))
    return "\r".join(segments)


def expected_ack_mode(msg: HL7Message) -> AckMode:
    """``"enhanced"`` when MSH-15 or MSH-16 is valued, else ``"original"``."""
    return "enhanced" if msg.accept_ack_type or msg.app_ack_type else "original"


def wants_ack(value: str, success: bool) -> bool:
    """Whether an MSH-15/MSH-16 value (AL/NE/ER/SU, empty or unknown: always) asks for an
    acknowledgement of a message that succeeded (``success``) or not."""
    mode = value.strip().upper()
    if mode == "NE":
        return False
    if mode == "ER":
        return not success
    if mode == "SU":
        return success
    return True  # AL, empty (original mode) and unknown values: answer, never go silent


def should_send_accept_ack(msg: HL7Message, success: bool) -> bool:
    """Honour MSH-15 (AL/NE/ER/SU); empty (original mode) or unknown → always."""
    return wants_ack(msg.accept_ack_type, success)


def should_send_application_ack(msg: HL7Message, success: bool) -> bool:
    """Honour MSH-16 (AL/NE/ER/SU) the same way; empty or unknown → always."""
    return wants_ack(msg.app_ack_type, success)

"""Character sets: HL7 table 0211 (MSH-18) ↔ Python codecs, inbound decode, outbound encode.

Decoding never raises (bad bytes become U+FFFD and ``Decoded.lossy`` is set; the
caller keeps the raw bytes).  Encoding never replaces silently: unencodable text
raises ``HL7EncodeError`` unless ``errors="hl7"`` asks for ``\\Xhh\\`` escapes.

Approximations (Python has no exact codec for these table 0211 values):

* ``ISO IR14`` (JIS X 0201, one byte) → ``shift_jis``: decodes the Roman half
  (0x5C/0x7E as ``\\``/``~`` rather than ¥/‾) and the half-width katakana
  (0xA1-0xDF) correctly; it would also accept Shift_JIS double-byte kanji, which
  a pure JIS X 0201 stream never contains.
* ``ISO IR87`` (JIS X 0208) → ``iso2022_jp``; ``ISO IR159`` (JIS X 0212) →
  ``iso2022_jp_2`` (the ISO 2022 escape sequences select the sets).
* ``KS X 1001`` → ``euc_kr`` (the EUC form of KS X 1001, as used in practice).
* ``CNS 11643-1992`` → ``big5``: Big5 covers the CNS planes 1-2 repertoire but
  with different byte values, so genuine EUC-TW bytes will decode wrongly.
* ``UNICODE`` (which 2.3-era senders used loosely) → ``utf-8``.

Only the first repetition of MSH-18 is used; the ISO 2022 code-extension
repetitions (e.g. ``~ISO IR87``) are not interpreted.
"""

from __future__ import annotations

import codecs
import re
from typing import Literal, NamedTuple

from engine.hl7.errors import HL7EncodeError

__all__ = ["Decoded", "codec_for", "decode_message", "encode_text", "sniff_msh18"]

_TABLE_0211: dict[str, str] = {
    "": "ascii",
    "ASCII": "ascii",
    **{f"8859/{n}": f"iso8859-{n}" for n in range(1, 10)},
    "8859/15": "iso8859-15",
    "ISO IR14": "shift_jis",
    "ISO IR87": "iso2022_jp",
    "ISO IR159": "iso2022_jp_2",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "CNS 11643-1992": "big5",
    "BIG-5": "big5",
    "UNICODE": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "UNICODE UTF-16": "utf-16",
    "UNICODE UTF-32": "utf-32",
}
# Tolerated spellings seen in the wild (DICOM-style terms, IANA names).
_ALIASES: dict[str, str] = {
    "UTF8": "utf-8",
    "UTF-8": "utf-8",
    "UTF16": "utf-16",
    "UTF32": "utf-32",
    "ISOIR6": "ascii",
    "ISOIR100": "iso8859-1",
    "ISOIR101": "iso8859-2",
    "ISOIR109": "iso8859-3",
    "ISOIR110": "iso8859-4",
    "ISOIR144": "iso8859-5",
    "ISOIR127": "iso8859-6",
    "ISOIR126": "iso8859-7",
    "ISOIR138": "iso8859-8",
    "ISOIR148": "iso8859-9",
    "ISOIR192": "utf-8",
    "LATIN1": "iso8859-1",
    "ISO88591": "iso8859-1",
    "ISO885915": "iso8859-15",
    "GB18030": "gb18030",
    "BIG5": "big5",
}
_SQUASH = re.compile(r"[\s_\-/]+")

_BOMS: tuple[tuple[bytes, str, str], ...] = (
    (codecs.BOM_UTF32_LE, "UNICODE UTF-32", "utf-32"),  # before UTF-16 LE: same prefix
    (codecs.BOM_UTF32_BE, "UNICODE UTF-32", "utf-32"),
    (codecs.BOM_UTF8, "UNICODE UTF-8", "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "UNICODE UTF-16", "utf-16"),
    (codecs.BOM_UTF16_BE, "UNICODE UTF-16", "utf-16"),
)
# "MSH" in a BOM-less wide encoding: (prefix, MSH-18 value, exact codec)
_WIDE: tuple[tuple[bytes, str, str], ...] = (
    ("MSH".encode("utf-32-le"), "UNICODE UTF-32", "utf-32-le"),
    ("MSH".encode("utf-32-be"), "UNICODE UTF-32", "utf-32-be"),
    ("MSH".encode("utf-16-le"), "UNICODE UTF-16", "utf-16-le"),
    ("MSH".encode("utf-16-be"), "UNICODE UTF-16", "utf-16-be"),
)
_WS = b" \t\r\n"
_MSH_WINDOW = 1 << 16  # MSH lives in the first bytes; never scan a 20 MB ORU for it


class Decoded(NamedTuple):
    """Decoded message text, the Python codec used and whether bytes were replaced."""

    text: str
    codec: str
    lossy: bool


def _wide_or_bom(raw: bytes) -> tuple[str, str] | None:
    for bom, value, codec in _BOMS:
        if raw.startswith(bom):
            return value, codec
    for prefix, value, codec in _WIDE:
        if raw.startswith(prefix):
            return value, codec
    return None


def sniff_msh18(raw: bytes) -> str:
    """MSH-18 (first repetition, first component) read from raw bytes; "" if absent.

    Only the MSH segment is looked at, as ASCII.  A Unicode BOM (or a BOM-less
    UTF-16/32 "MSH") is answered with the matching ``UNICODE UTF-n`` value.
    """
    if raw[:4] == b"MSH|":  # the common case: ASCII "MSH" first, no BOM, no wide text
        end = raw.find(b"\r", 0, _MSH_WINDOW)
        msh = raw[:end] if end >= 0 else raw[:_MSH_WINDOW]
        if b"\n" not in msh:
            fields = msh.split(b"|", 18)
            if len(fields) < 18 or len(fields[1]) < 2:
                return ""
            comp, rep = fields[1][0:1], fields[1][1:2]
            value = fields[17].split(b"|", 1)[0].split(rep)[0].split(comp)[0]
            try:
                return value.decode("ascii").strip()
            except UnicodeDecodeError:
                return ""
    wide = _wide_or_bom(raw)
    if wide is not None:
        return wide[0]
    head = raw[:_MSH_WINDOW].lstrip(_WS)
    if not head.startswith(b"MSH") or len(head) < 8:
        return ""
    fs = head[3:4]
    ends = [i for i in (head.find(b"\r"), head.find(b"\n")) if i >= 0]
    msh = head[: min(ends)] if ends else head
    fields = msh.split(fs)
    if len(fields) < 18 or len(fields[1]) < 2:
        return ""
    comp, rep = fields[1][0:1], fields[1][1:2]
    value = fields[17].split(rep)[0].split(comp)[0]
    try:
        return value.decode("ascii").strip()
    except UnicodeDecodeError:
        return ""


def codec_for(msh18: str, fallback: str) -> str:
    """Python codec name for an MSH-18 value (table 0211); unknown → ``fallback``."""
    key = msh18.strip().upper()
    codec = _TABLE_0211.get(key)
    if codec is None:
        codec = _ALIASES.get(_SQUASH.sub("", key).replace("UNICODE", ""), fallback)
    return codec


def _decode(raw: bytes, codec: str) -> tuple[str, bool]:
    try:
        return raw.decode(codec), False
    except UnicodeDecodeError:
        return raw.decode(codec, errors="replace"), True


def decode_message(raw: bytes, fallback: str = "latin-1") -> Decoded:
    """Decode a whole message by its MSH-18, else ``fallback``; never raises on bad bytes.

    An absent MSH-18 uses ``fallback`` (not ASCII: undeclared 8-bit text is common and
    ``fallback`` is a superset).  A declared UTF-16/32 on ASCII-compatible bytes is
    impossible (MSH-18 was readable as ASCII), so ``fallback`` is used then too.
    """
    codecs.lookup(fallback)  # an unknown fallback is a programming error: raise early
    wide = _wide_or_bom(raw)
    if wide is not None:
        text, lossy = _decode(raw, wide[1])
        return Decoded(text, wide[1].removesuffix("-sig"), lossy)
    declared = sniff_msh18(raw)
    codec = codec_for(declared, fallback) if declared else fallback
    if codec in ("utf-16", "utf-32"):
        codec = fallback
    text, lossy = _decode(raw, codec)
    return Decoded(text, codec, lossy)


def _hex_escape(chars: str, esc: str) -> str:
    return "".join(
        f"{esc}X{ch.encode('utf-8', 'surrogatepass').hex().upper()}{esc}" for ch in chars
    )


def encode_text(
    text: str, codec: str, errors: Literal["strict", "hl7"] = "strict", escape_char: str = "\\"
) -> bytes:
    """Encode outbound text with ``codec``.

    ``errors="strict"``: raise ``HL7EncodeError`` naming the first unencodable
    character and its position.  ``errors="hl7"``: write each unencodable
    character as an HL7 ``\\Xhh..\\`` escape of its UTF-8 bytes (``escape_char`` is
    MSH-2's escape character) — only valid inside field values.
    """
    if errors not in ("strict", "hl7"):
        raise ValueError(f"errors must be 'strict' or 'hl7', not {errors!r}")
    try:
        return text.encode(codec)
    except UnicodeEncodeError as exc:
        if errors == "strict":
            raise HL7EncodeError(codec, exc.start, text[exc.start]) from None
    pieces: list[str] = []
    rest = text
    while True:  # one re-encode per unencodable run; ASCII escapes always encode
        try:
            rest.encode(codec)
            break
        except UnicodeEncodeError as exc:
            pieces.append(rest[: exc.start])
            pieces.append(_hex_escape(rest[exc.start : exc.end], escape_char))
            rest = rest[exc.end :]
    pieces.append(rest)
    return "".join(pieces).encode(codec)

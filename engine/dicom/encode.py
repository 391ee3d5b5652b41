"""A small, fast DICOM data set encoder for little endian transfer syntaxes (sans-I/O).

pydicom's writer costs about 0.5 ms for a 20-element worklist item, and a C-FIND answer has
one item per match; this encoder does the same job in tens of microseconds for what an SCP
returns: text, numbers and sequences built from plain Python values. Input is a list of
``(tag, VR, value)`` in ascending tag order, where a value is ``None`` (zero length), a
string (multiple values joined by backslash), a list of strings or numbers, bytes, or for
``SQ`` a list of items, each itself such a list. Output is Implicit or Explicit VR Little
Endian with defined lengths. Strings of the VRs that Specific Character Set governs are
encoded with ``codec``; the others are ASCII.

Tests check it against pydicom's writer byte for byte.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache

from pydicom.datadict import dictionary_VR, tag_for_keyword

Element = tuple[int, str, object]
CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "PN"})
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"})
_NUMBER = {"US": "<H", "SS": "<h", "UL": "<I", "SL": "<i", "FL": "<f", "FD": "<d",
           "UV": "<Q", "SV": "<q"}
_NUL_PADDED = frozenset({"UI", "OB", "UN"})
_ITEM = struct.Struct("<HHI")
_ITEM_TAG = (0xFFFE, 0xE000)
_TAG_LEN = struct.Struct("<HHI")
_TAG_VR_SHORT = struct.Struct("<HH2sH")
_TAG_VR_LONG = struct.Struct("<HH2sHI")


@lru_cache(maxsize=8192)
def keyword_tag(keyword: str) -> tuple[int, str] | None:
    """(tag, VR) of a dictionary keyword; the first VR when the dictionary lists several."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        return None
    return tag, dictionary_VR(tag).split(" ")[0]


def _text(vr: str, value: object, codec: str) -> bytes:
    if isinstance(value, list | tuple):
        text = "\\".join("" if v is None else str(v) for v in value)
    else:
        text = str(value)
    if vr in CHARSET_VRS:
        return text.encode(codec, errors="replace")
    return text.encode("ascii", errors="replace")


def value_bytes(vr: str, value: object, codec: str = "ascii") -> bytes:
    """The encoded, even-length value of one non-sequence element."""
    if value is None or value in ("", []):
        return b""
    fmt = _NUMBER.get(vr)
    if fmt is not None:
        items = value if isinstance(value, list | tuple) else str(value).split("\\")
        return b"".join(struct.pack(fmt, float(v) if fmt in ("<f", "<d") else int(v))
                        for v in items)
    data = bytes(value) if isinstance(value, bytes | bytearray) else _text(vr, value, codec)
    if len(data) % 2:
        data += b"\x00" if vr in _NUL_PADDED else b" "
    return data


def _header(tag: int, vr: str, length: int, implicit: bool) -> bytes:
    group, elem = tag >> 16, tag & 0xFFFF
    if implicit:
        return _TAG_LEN.pack(group, elem, length)
    code = vr.encode("ascii") if len(vr) == 2 else b"UN"
    if vr in _LONG_VRS or len(vr) != 2:
        return _TAG_VR_LONG.pack(group, elem, code, 0, length)
    if length > 0xFFFF:
        raise ValueError(f"value of ({group:04X},{elem:04X}) too long for VR {vr}")
    return _TAG_VR_SHORT.pack(group, elem, code, length)


def encode_elements(elements: Sequence[Element], *, implicit: bool = True,
                    codec: str = "ascii") -> bytes:
    """Encode elements (ascending tag order) as a little endian data set."""
    out: list[bytes] = []
    for tag, vr, value in elements:
        if vr == "SQ":
            items: list[bytes] = []
            for item in value if isinstance(value, list) else ():
                body = encode_elements(item, implicit=implicit, codec=codec)
                items.append(_ITEM.pack(*_ITEM_TAG, len(body)))
                items.append(body)
            data = b"".join(items)
        else:
            data = value_bytes(vr, value, codec)
        out.append(_header(tag, vr, len(data), implicit))
        out.append(data)
    return b"".join(out)

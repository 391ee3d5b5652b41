"""Worklist C-FIND responses: the requested attributes of a stored item, encoded (sans-I/O).

:class:`ReturnKeys` records what a query asked for: every top-level attribute of the
identifier, and for a sequence either the attributes of its one query item or — when the
query sequence is empty or holds an empty item — everything stored in it (so an empty
Scheduled Procedure Step Sequence returns the whole step, as DCMTK does). A requested
attribute the item does not hold is returned with zero length; attributes that were not
requested are not returned.

Specific Character Set is added when a returned string is not ASCII (or when the query asked
for it): the item's own character set when it can encode every string, else ISO_IR 100
(Latin-1) when that can, else ISO_IR 192 (UTF-8). Names are encoded in that character set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.charset import python_encoding
from pydicom.dataset import Dataset

from channels.dicom_mwl.identifier import QueryElement, from_dataset
from engine.dicom.encode import CHARSET_VRS, Element, encode_elements, keyword_tag
from engine.dicom.values import clean

SPECIFIC_CHARACTER_SET = 0x00080005
_LATIN1, _UTF8 = "ISO_IR 100", "ISO_IR 192"


@dataclass(frozen=True, slots=True)
class ReturnKey:
    tag: int
    keyword: str
    vr: str
    items: tuple[ReturnKey, ...] | None = None
    """For a sequence: the keys of its query item; None returns each stored item whole."""


@dataclass(frozen=True, slots=True)
class ReturnKeys:
    keys: tuple[ReturnKey, ...]
    wants_charset: bool = False

    @classmethod
    def from_identifier(cls, ds: Dataset) -> ReturnKeys:
        return cls.from_elements(from_dataset(ds))

    @classmethod
    def from_elements(cls, elements: tuple[QueryElement, ...]) -> ReturnKeys:
        wants = any(tag == SPECIFIC_CHARACTER_SET for tag, _k, _v, _x in elements)
        return cls(_keys_of(elements), wants)


def _keys_of(elements: tuple[QueryElement, ...]) -> tuple[ReturnKey, ...]:
    keys: list[ReturnKey] = []
    for tag, keyword, vr, value in elements:
        if tag == SPECIFIC_CHARACTER_SET or (tag >> 16) in (0x0000, 0x0002):
            continue
        items: tuple[ReturnKey, ...] | None = None
        if vr == "SQ" and isinstance(value, tuple) and value and value[0]:
            items = _keys_of(value[0])
        keys.append(ReturnKey(tag, keyword, vr, items))
    return tuple(keys)


def _whole(item: Mapping[str, Any]) -> list[Element]:
    out: list[Element] = []
    for keyword, value in item.items():
        known = keyword_tag(keyword)
        if known is None or keyword == "SpecificCharacterSet":
            continue
        tag, vr = known
        if vr == "SQ":
            subs = value if isinstance(value, list) else []
            out.append((tag, vr, [_whole(s) for s in subs if isinstance(s, Mapping)]))
        else:
            out.append((tag, vr, value))
    out.sort(key=lambda e: e[0])
    return out


def select(item: Mapping[str, Any], keys: tuple[ReturnKey, ...]) -> list[Element]:
    """The requested elements of ``item`` (tag order), zero length where it has none."""
    out: list[Element] = []
    for key in keys:
        value = item.get(key.keyword) if key.keyword else None
        if key.vr == "SQ":
            subs = [s for s in value if isinstance(s, Mapping)] if isinstance(value, list) else []
            if key.items is None:
                out.append((key.tag, "SQ", [_whole(s) for s in subs]))
            else:
                out.append((key.tag, "SQ", [select(s, key.items) for s in subs]))
        else:
            out.append((key.tag, key.vr, value))
    return out


def _texts(elements: list[Element]) -> list[str]:
    out: list[str] = []
    for _tag, vr, value in elements:
        if vr == "SQ" and isinstance(value, list):
            for sub in value:
                out.extend(_texts(sub))
        elif vr in CHARSET_VRS and value:
            if isinstance(value, list | tuple):
                out.extend(str(v) for v in value)
            else:
                out.append(str(value))
    return out


def _can_encode(texts: list[str], codec: str) -> bool:
    try:
        for text in texts:
            text.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def choose_charset(texts: list[str], stored: str) -> tuple[str, str]:
    """(Specific Character Set term or "", Python codec) for strings to be returned."""
    if all(t.isascii() for t in texts):
        return "", "ascii"
    if stored and "\\" not in stored and not stored.startswith("ISO 2022"):
        codec = python_encoding.get(stored)
        if codec and _can_encode(texts, codec):
            return stored, codec
    if _can_encode(texts, "latin_1"):
        return _LATIN1, "latin_1"
    return _UTF8, "utf_8"


def encode_response(item: Mapping[str, Any], keys: ReturnKeys, *, implicit: bool = True
                    ) -> bytes:
    """The C-FIND response identifier for one stored item."""
    elements = select(item, keys.keys)
    stored = clean(item.get("SpecificCharacterSet"))
    term, codec = choose_charset(_texts(elements), stored)
    if term or keys.wants_charset:
        value = term or (stored if stored in python_encoding else "")
        elements.insert(0, (SPECIFIC_CHARACTER_SET, "CS", value))
    elements.sort(key=lambda e: e[0])
    return encode_elements(elements, implicit=implicit, codec=codec)

"""A C-FIND identifier as plain :data:`QueryElement` tuples, from bytes or from a Dataset.

The matcher and the response builder read the query through this one form, whichever way it
arrived: straight from the wire (:func:`from_bytes`, the fast path of the SCP, decoded with
the query's own Specific Character Set) or from a pydicom Dataset (:func:`from_dataset`).
A value is the text of the element (multiple values joined by backslash, padding removed),
or for a sequence a tuple of items, each a tuple of elements.
"""

from __future__ import annotations

from functools import lru_cache

from pydicom.charset import convert_encodings
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from engine.dicom.decode import RawElement, decode_elements, text

QueryValue = str | tuple[tuple["QueryElement", ...], ...]
QueryElement = tuple[int, str, str, QueryValue]
"""(tag, keyword or "", VR, value)."""
SPECIFIC_CHARACTER_SET = 0x00080005
_BINARY = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "US", "SS", "UL", "SL", "FL",
                     "FD", "AT", "UV", "SV"})


@lru_cache(maxsize=8192)
def _keyword(tag: int) -> str:
    return str(keyword_for_tag(tag) or "")


def _convert(elements: list[RawElement], encodings: list[str]) -> tuple[QueryElement, ...]:
    out: list[QueryElement] = []
    for tag, vr, value in elements:
        if isinstance(value, list):
            items = tuple(_convert(item, encodings) for item in value)
            out.append((tag, _keyword(tag), vr, items))
        else:
            value_text = "" if vr in _BINARY else text(vr, value, encodings)
            out.append((tag, _keyword(tag), vr, value_text))
    return tuple(out)


def from_bytes(data: bytes, *, implicit: bool = True) -> tuple[QueryElement, ...]:
    """Decode an identifier (raises engine.dicom.decode.DecodeError, LookupError)."""
    elements = decode_elements(data, implicit=implicit)
    terms = ["ISO_IR 6"]
    for tag, _vr, value in elements:
        if tag == SPECIFIC_CHARACTER_SET and isinstance(value, bytes):
            terms = [t.strip(" \x00") for t in value.decode("ascii", "replace").split("\\")]
            terms = [t or "ISO_IR 6" for t in terms]
            break
    return _convert(elements, convert_encodings(terms))


def _text_of(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_text_of(v) for v in value)
    return str(value)


def from_dataset(ds: Dataset) -> tuple[QueryElement, ...]:
    out: list[QueryElement] = []
    for elem in ds:
        vr = str(elem.VR).split(" ")[0]
        if vr == "SQ":
            items = tuple(from_dataset(item) for item in elem.value)
            out.append((int(elem.tag), elem.keyword, vr, items))
        else:
            value = "" if vr in _BINARY else _text_of(elem.value)
            out.append((int(elem.tag), elem.keyword, vr, value))
    return tuple(out)

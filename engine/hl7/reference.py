"""Per-version HL7 reference data and structural validation, via hl7apy (off the hot path).

``engine.hl7`` does not import this module, so the hot path never loads hl7apy.  Nothing here
raises on bad input: unknown versions/segments give ``None`` and validation
problems come back as human-readable strings.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import hl7apy
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import ChildNotFound
from hl7apy.parser import parse_message

from engine.hl7.errors import HL7ParseError
from engine.hl7.message import HL7Message
from engine.hl7.versions import version_tuple

__all__ = ["field_exists", "known_versions", "validate_structure"]


def _libraries() -> dict[str, str]:
    libs: dict[str, str] = hl7apy.SUPPORTED_LIBRARIES
    return libs


def known_versions() -> list[str]:
    """Versions hl7apy has reference data for, oldest first (e.g. ``"2.1"`` … ``"2.8.2"``)."""
    return sorted(_libraries(), key=lambda v: version_tuple(v) or (0,))


@lru_cache(maxsize=1024)
def _segment_fields(version: str, segment: str) -> tuple[Any, ...] | None:
    """hl7apy's child references of ``segment`` (one per field), or ``None``."""
    if version not in _libraries() or segment.startswith("Z"):
        return None
    try:
        ref = hl7apy.load_reference(segment, "Segment", version)
    except ChildNotFound:
        return None
    children: tuple[Any, ...] = tuple(ref[1])
    return children


def field_exists(
    version: str, segment: str, field_no: int, component: int | None = None
) -> bool | None:
    """Whether ``segment-field_no[.component]`` is defined in ``version``.

    ``None`` when hl7apy does not know the version or the segment (Z-segments
    always), or when the field's type is ``varies`` and a component is asked.
    A primitive (non-composite) field has exactly one component.
    """
    fields = _segment_fields(version, segment)
    if fields is None:
        return None
    if field_no < 1 or field_no > len(fields):
        return False
    if component is None:
        return True
    ref = fields[field_no - 1][1]
    if ref[0] == "leaf":
        if ref[2] == "varies":
            return None
        return component == 1
    return 1 <= component <= len(ref[1])


def _walk_segments(element: Any) -> list[Any]:
    out: list[Any] = []
    for child in element.children:
        if child.classname == "Segment":
            out.append(child)
        elif child.classname == "Group":
            out.extend(_walk_segments(child))
    return out


def validate_structure(text: str) -> list[str]:
    """Problems found by an hl7apy STRICT parse and validation (empty list = valid).

    Our own parser runs first so a malformed message gets its precise reason.  hl7apy
    stops at its first error per element, so the list holds the message-level
    error plus at most one error per segment.  Never raises.
    """
    try:
        msg = HL7Message.parse(text)
    except HL7ParseError as exc:
        return [exc.reason]
    except Exception as exc:  # defensive: never raise from a validator
        return [f"cannot parse message: {type(exc).__name__}: {exc}"]
    version = msg.version
    if version not in _libraries():
        return [f"version {version!r} is not supported by hl7apy (known: "
                f"{', '.join(known_versions())})"]
    er7 = msg.encode("\r", trailing=False)
    problems: list[str] = []
    try:
        parsed = parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT)
    except Exception as exc:
        problems.append(f"strict parse: {exc}")
        try:
            parsed = parse_message(er7, validation_level=VALIDATION_LEVEL.TOLERANT)
        except Exception as exc2:
            problems.append(f"tolerant parse: {exc2}")
            return problems
    for element in (parsed, *_walk_segments(parsed)):
        try:
            element.validate()
        except Exception as exc:
            problem = f"{element.name}: {exc}"
            if problem not in problems:
                problems.append(problem)
    return problems

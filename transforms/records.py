"""Paths into records (nested dicts, e.g. DICOM datasets as keyword → value).

Syntax: dotted keys with 0-based list indexes, e.g. ``PatientName``,
``ScheduledStepAttributesSequence[0].AccessionNumber`` or ``_order.control``.
Sequences are lists of dicts; a multi-valued attribute is a list of strings.

``parse_record_path`` compiles the text once; ``get_in`` reads ("" when anything on the
way is missing) and ``set_in`` writes, creating the dicts and list items on the way.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["RecordPath", "RecordPathError", "format_record_path", "get_in", "parse_record_path",
           "set_in"]

RecordPath = tuple[str | int, ...]

_KEY = r"[A-Za-z_][A-Za-z0-9_]*"
_PART = re.compile(rf"({_KEY})((?:\[[0-9]+\])*)")
_INDEX = re.compile(r"\[([0-9]+)\]")
_MAX_INDEX = 9999


class RecordPathError(ValueError):
    """A record path does not follow ``Key[.Key][i]...``."""


def parse_record_path(text: str) -> RecordPath:
    """``"A[0].B"`` → ``("A", 0, "B")``; raises ``RecordPathError`` on bad syntax."""
    if not isinstance(text, str) or not text:
        raise RecordPathError("a record path must be a non-empty text such as 'PatientName'")
    out: list[str | int] = []
    for part in text.split("."):
        m = _PART.fullmatch(part)
        if m is None:
            raise RecordPathError(
                f"invalid record path {text!r}: expected keys joined by '.', each with "
                "optional 0-based [index], e.g. 'ScheduledProcedureStepSequence[0].Modality'")
        out.append(m.group(1))
        for idx in _INDEX.findall(m.group(2)):
            n = int(idx)
            if n > _MAX_INDEX:
                raise RecordPathError(f"index {n} in {text!r} is too large (at most {_MAX_INDEX})")
            out.append(n)
    return tuple(out)


def format_record_path(path: RecordPath) -> str:
    """Inverse of ``parse_record_path``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text


def get_in(root: Any, path: RecordPath) -> Any:
    """The value at ``path`` below ``root``; ``""`` when a key or index is missing."""
    cur = root
    for part in path:
        if isinstance(part, int):
            if not isinstance(cur, list) or part >= len(cur):
                return ""
            cur = cur[part]
        else:
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(part, "")
    return cur


def set_in(root: dict[str, Any], path: RecordPath, value: Any) -> None:
    """Write ``value`` at ``path``, creating dicts and list items; raises ``TypeError``
    when something already there has the wrong shape (e.g. a text where a dict is needed)."""
    cur: Any = root
    last = len(path) - 1
    for i, part in enumerate(path):
        nxt: Any = [] if i < last and isinstance(path[i + 1], int) else {}
        if isinstance(part, int):
            if not isinstance(cur, list):
                raise TypeError(f"{format_record_path(path[:i])} is not a list")
            while len(cur) <= part:
                cur.append(type(nxt)() if i < last else "")
            if i == last:
                cur[part] = value
                return
            if not isinstance(cur[part], type(nxt)):
                cur[part] = nxt if cur[part] in ("", None) else _shape(path, i + 1, cur[part])
            cur = cur[part]
        else:
            if not isinstance(cur, dict):
                raise TypeError(f"{format_record_path(path[:i])} is not a mapping")
            if i == last:
                cur[part] = value
                return
            child = cur.get(part)
            if child is None or child == "":
                child = cur[part] = nxt
            elif not isinstance(child, type(nxt)):
                _shape(path, i + 1, child)
            cur = child


def _shape(path: RecordPath, upto: int, found: Any) -> Any:
    raise TypeError(
        f"{format_record_path(path[:upto])} already holds a {type(found).__name__}, "
        f"cannot write {format_record_path(path)}")

"""Compiled field paths such as ``PID-3[2].1.2`` and ``OBR[2]-4.1``.

Grammar: ``SEG[occurrence]-field[repetition].component.subcomponent`` where every
number is 1-based and everything after the field number is optional.  ``MSH-1`` is
the field separator and ``MSH-2`` the encoding characters (HL7 numbering).
``Path.parse`` is memoised, so passing strings to ``HL7Message.get`` costs one
cache lookup after the first call.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

__all__ = ["Path", "compile_path"]

_PATH_RE = re.compile(
    r"(?P<seg>[A-Z0-9]{3})(?:\[(?P<occ>[0-9]+)\])?"
    r"-(?P<field>[0-9]+)(?:\[(?P<rep>[0-9]+)\])?"
    r"(?:\.(?P<comp>[0-9]+)(?:\.(?P<sub>[0-9]+))?)?"
)
_SYNTAX_HELP = "expected SEG[-n] like 'PID-3', 'PID-3.1', 'PID-3[2].1.2' or 'OBR[2]-4.1'"


class Path(NamedTuple):
    """A parsed path; ``None`` means "not given" (first occurrence/repetition)."""

    segment: str
    occurrence: int | None
    field: int
    repetition: int | None
    component: int | None
    subcomponent: int | None

    @staticmethod
    def parse(text: str) -> Path:
        """Compile ``text``; raises ``ValueError`` with the offending path on bad syntax."""
        return _parse(text)

    @property
    def is_msh_delimiter(self) -> bool:
        """True for ``MSH-1``/``MSH-2``, which are returned verbatim, never split."""
        return self.segment == "MSH" and self.field <= 2

    def __str__(self) -> str:
        out = self.segment
        if self.occurrence is not None:
            out += f"[{self.occurrence}]"
        out += f"-{self.field}"
        if self.repetition is not None:
            out += f"[{self.repetition}]"
        if self.component is not None:
            out += f".{self.component}"
            if self.subcomponent is not None:
                out += f".{self.subcomponent}"
        return out


def _num(s: str | None) -> int | None:
    return None if s is None else int(s)


@lru_cache(maxsize=4096)
def _parse(text: str) -> Path:
    if not isinstance(text, str):
        raise TypeError(f"HL7 path must be a str, not {type(text).__name__}")
    m = _PATH_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"invalid HL7 path {text!r}: {_SYNTAX_HELP}")
    p = Path(
        m["seg"],
        _num(m["occ"]),
        int(m["field"]),
        _num(m["rep"]),
        _num(m["comp"]),
        _num(m["sub"]),
    )
    if 0 in (p.occurrence, p.field, p.repetition, p.component, p.subcomponent):
        raise ValueError(
            f"invalid HL7 path {text!r}: segment occurrence, field, repetition, "
            "component and subcomponent numbers start at 1"
        )
    return p


#: ``compile_path(s)`` is ``Path.parse(s)`` without the static-method indirection.
compile_path = _parse

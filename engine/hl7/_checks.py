"""Parse-time structural checks: required MSH fields and segment names (slow paths).

``HL7Message`` calls these only when its fast checks fail, so they can afford to
be thorough and produce precise ``HL7ParseError`` reasons.
"""

from __future__ import annotations

from engine.hl7.delimiters import Delimiters
from engine.hl7.errors import HL7ParseError

__all__ = ["NAMES_OK", "check_names", "reject_msh"]

_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
NAMES_OK: set[str] = set()  # segment names already checked (bounded: 36**3)
_MSH_REQUIRED = (
    (9, "MSH-9 message type"),
    (10, "MSH-10 message control id"),
    (11, "MSH-11 processing id"),
    (12, "MSH-12 version id"),
)


def reject_msh(f: list[str], d: Delimiters) -> None:
    """Raise the precise reason why MSH fields ``f`` (``f[n]`` is MSH-n) are unusable."""
    for idx, label in _MSH_REQUIRED:
        if idx >= len(f):
            raise HL7ParseError(
                f"{label} is missing: MSH is truncated after MSH-{len(f) - 1}",
                "101",
                f"MSH^1^{idx}",
            )
        if not f[idx]:
            raise HL7ParseError(f"{label} is missing: MSH-{idx} is empty", "101", f"MSH^1^{idx}")
    if f[9].startswith(d.component):
        raise HL7ParseError("MSH-9.1 message code is missing", "101", "MSH^1^9^1^1")


def check_names(segs: list[str], fs: str) -> tuple[list[str], list[str]]:
    """Slow path: drop blank lines, validate new names, check the field separator."""
    kept = [s for s in segs if s and not s.isspace()]
    for pos, s in enumerate(kept, start=1):
        name = s[:3]
        where = f"{name}^{pos}" if name.isalnum() and name.isascii() else ""
        if name not in NAMES_OK:
            if len(name) != 3 or not _NAME_CHARS.issuperset(name):
                raise HL7ParseError(
                    f"segment {pos} has an invalid name {s[:8]!r}: expected 3 upper-case "
                    "letters or digits followed by the field separator",
                    "100",
                    where,
                )
            NAMES_OK.add(name)
        if len(s) > 3 and s[3] != fs:
            raise HL7ParseError(
                f"segment {pos} has an invalid name {s[: s.find(fs)] if fs in s else s[:8]!r}: "
                f"expected 3 upper-case letters or digits followed by {fs!r}",
                "100",
                where,
            )
    return kept, [s[:3] for s in kept]

"""HL7 v2 version identifiers (MSH-12): which are known and how to compare them."""

from __future__ import annotations

__all__ = ["KNOWN_VERSIONS", "is_known_version", "version_tuple"]

#: Every HL7 v2 version published between 2.1 and 2.8.2.
KNOWN_VERSIONS: tuple[str, ...] = (
    "2.1",
    "2.2",
    "2.3",
    "2.3.1",
    "2.4",
    "2.5",
    "2.5.1",
    "2.6",
    "2.7",
    "2.7.1",
    "2.8",
    "2.8.1",
    "2.8.2",
)
_KNOWN = frozenset(KNOWN_VERSIONS)


def is_known_version(version: str) -> bool:
    """True for 2.1 … 2.8.2 (exact MSH-12.1 spelling, e.g. ``"2.5.1"``)."""
    return version in _KNOWN


def version_tuple(version: str) -> tuple[int, ...] | None:
    """``"2.5.1"`` → ``(2, 5, 1)``; ``None`` when not dotted digits."""
    parts = version.strip().split(".")
    if not all(p.isdigit() and p.isascii() for p in parts):
        return None
    return tuple(int(p) for p in parts)

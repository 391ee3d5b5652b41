"""``Segment``: a cheap view of one segment of an ``HL7Message``.

Views are created on demand (``HL7Message.segments``/``groups``) and read through
the message's per-segment field cache, so edits made with ``HL7Message.set`` are
visible through existing views.  Field numbers follow HL7 (``MSH-1`` is the field
separator); repetitions, components and subcomponents are 1-based.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.hl7._access import narrow, pick

if TYPE_CHECKING:
    from engine.hl7.message import HL7Message

__all__ = ["Segment"]


class Segment:
    """One segment; ``name``, ``index`` (position in the message) and field access."""

    __slots__ = ("_index", "_msg")

    def __init__(self, msg: HL7Message, index: int) -> None:
        self._msg = msg
        self._index = index

    @property
    def name(self) -> str:
        return self._msg._names[self._index]

    @property
    def index(self) -> int:
        """0-based position of this segment in the message (MSH is 0)."""
        return self._index

    @property
    def fields(self) -> list[str]:
        """Encoded fields; ``fields[0]`` is the name and ``fields[n]`` field n."""
        return list(self._msg._field_list(self._index))

    def __len__(self) -> int:
        """Number of the last field present (``PID|1||X`` has 3)."""
        return len(self._msg._field_list(self._index)) - 1

    def get(self, field: int, rep: int = 1, comp: int | None = None, sub: int | None = None) -> str:
        """Same rules as ``HL7Message.get`` for ``<name>-field[rep].comp.sub``."""
        f = self._msg._field_list(self._index)
        if field < 1 or field >= len(f):
            return ""
        if self._index == 0 and field <= 2:
            return f[field] if rep == 1 and comp in (None, 1) else ""
        return pick(f[field], rep, comp, sub, self._msg._d)

    def get_all(self, field: int, comp: int | None = None, sub: int | None = None) -> list[str]:
        """Every repetition of ``field`` (narrowed to ``comp``/``sub``); [] when empty."""
        f = self._msg._field_list(self._index)
        if field < 1 or field >= len(f) or not f[field]:
            return []
        if self._index == 0 and field <= 2:
            return [f[field]]
        d = self._msg._d
        return [narrow(r, comp, sub, d, True) for r in f[field].split(d.repetition)]

    def encode(self) -> str:
        """The segment's ER7 text (without segment terminator)."""
        return self._msg._segs[self._index]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Segment):
            return NotImplemented
        return self._msg is other._msg and self._index == other._index

    def __hash__(self) -> int:
        return hash((id(self._msg), self._index))

    def __repr__(self) -> str:
        return f"<Segment {self.name} #{self._index}>"

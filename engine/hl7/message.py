"""``HL7Message``: the lazily parsed HL7 v2 message — the engine's hot path.

``parse`` validates MSH and every segment name eagerly, but a segment is split into
fields only when first read (the field list is then cached); repetitions,
components and subcomponents are split per read and a value is unescaped only when
it contains the escape character.  Segments are kept as their encoded text, so an
unmodified message re-encodes exactly (after line-ending normalisation).
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.hl7._access import narrow, pick, replace
from engine.hl7._checks import NAMES_OK, check_names, reject_msh
from engine.hl7.delimiters import Delimiters, delimiters_from_msh
from engine.hl7.errors import HL7ParseError
from engine.hl7.escaping import escape
from engine.hl7.header import HeaderMixin
from engine.hl7.paths import Path, compile_path
from engine.hl7.segment import Segment
from engine.hl7.versions import is_known_version

__all__ = ["Delimiters", "HL7Message", "Segment", "is_known_version"]


class HL7Message(HeaderMixin):
    """One parsed HL7 v2 message; build with ``HL7Message.parse(text)``."""

    __slots__ = ("_d", "_fields", "_fs", "_names", "_segs", "_trailing")

    _d: Delimiters
    _fields: list[list[str] | None]
    _fs: str
    _names: list[str]
    _segs: list[str]
    _trailing: bool

    def __init__(self, text: str) -> None:
        if not text.startswith("MSH"):
            text = text.lstrip("\ufeff \t\r\n")
            if not text.startswith("MSH"):
                raise HL7ParseError("message does not start with MSH", "100", "MSH^1")
        if "\n" in text:
            text = text.replace("\r\n", "\r").replace("\n", "\r")
        segs = text.split("\r")
        last = segs[-1]
        self._trailing = trailing = not last or last.isspace()
        if trailing:
            segs.pop()
            while not segs[-1] or segs[-1].isspace():
                segs.pop()  # never empties: segs[0] starts with "MSH"
        msh = segs[0]
        fs = msh[3:4]
        f = msh.split(fs) if fs else [msh]
        d = delimiters_from_msh(fs, f[1] if len(f) > 1 else "")
        f.insert(1, fs)
        if len(f) < 13 or not (f[9] and f[10] and f[11] and f[12]) or f[9][0] == d.component:
            reject_msh(f, d)
        names = [s[:3] for s in segs]
        if NAMES_OK.issuperset(names):
            for s in segs:
                if len(s) > 3 and s[3] != fs:
                    segs, names = check_names(segs, fs)  # raises
        else:
            segs, names = check_names(segs, fs)
        self._d = d
        self._fs = fs
        self._segs = segs
        self._names = names
        fields: list[list[str] | None] = [None] * len(segs)
        fields[0] = f
        self._fields = fields

    @classmethod
    def parse(cls, text: str) -> HL7Message:
        """Parse ER7 text; raises ``HL7ParseError`` (with ``reason``/``error_code``)."""
        return cls(text)

    # -- internals shared with Segment -------------------------------------------------
    def _field_list(self, i: int) -> list[str]:
        f = self._fields[i]
        if f is None:
            f = self._segs[i].split(self._fs)
            self._fields[i] = f
        return f

    def _find(self, name: str, occurrence: int | None) -> int:
        names = self._names
        if occurrence is None or occurrence == 1:
            try:
                return names.index(name)
            except ValueError:
                return -1
        seen = 0
        for i, n in enumerate(names):
            if n == name:
                seen += 1
                if seen == occurrence:
                    return i
        return -1

    def _store(self, i: int, f: list[str]) -> None:
        self._fields[i] = f
        self._segs[i] = self._fs.join([f[0], *f[2:]]) if i == 0 else self._fs.join(f)

    # -- reading -----------------------------------------------------------------------
    def get(self, path: str) -> str:
        """Value at ``path`` (e.g. ``PID-3[2].1``), unescaped; ``""`` when absent.

        An absent segment occurrence/repetition means the first.  A value that still
        has structure (a field asked without component whose first repetition has
        components, or a component with subcomponents) is returned as its encoded
        text in the message's own delimiters, escapes untouched, e.g.
        ``get("PID-5") == "TESTPATIENT^ALICE^M"``.
        ``MSH-1``/``MSH-2`` return the delimiters verbatim.
        """
        return self.get_path(compile_path(path))

    def get_path(self, p: Path) -> str:
        """``get`` for a pre-compiled ``Path``."""
        names = self._names
        occ = p.occurrence
        if occ is None or occ == 1:
            try:
                i = names.index(p.segment)
            except ValueError:
                return ""
        else:
            i = self._find(p.segment, occ)
            if i < 0:
                return ""
        f = self._fields[i]
        if f is None:
            f = self._segs[i].split(self._fs)
            self._fields[i] = f
        n = p.field
        if n >= len(f):
            return ""
        if i == 0 and n <= 2:
            return f[n] if p.repetition in (None, 1) and p.component in (None, 1) else ""
        return pick(f[n], p.repetition, p.component, p.subcomponent, self._d)

    def get_encoded(self, path: str) -> str:
        """Like ``get`` but never unescapes (e.g. to echo MSH-10 byte for byte)."""
        p = compile_path(path)
        i = self._find(p.segment, p.occurrence)
        if i < 0:
            return ""
        f = self._field_list(i)
        if p.field >= len(f):
            return ""
        if i == 0 and p.field <= 2:
            return f[p.field]
        return pick(f[p.field], p.repetition, p.component, p.subcomponent, self._d, decode=False)

    def get_all(self, path: str) -> list[str]:
        """Every repetition of a field, narrowed to the path's component/subcomponent.

        With an explicit segment occurrence (``OBX[2]-5``) only that segment is read;
        otherwise every segment with that name is read, in order.  An explicit
        repetition (``PID-3[2]``) keeps only that repetition of each segment.  Empty
        or absent fields contribute nothing; empty repetitions inside a field give "".
        """
        p = compile_path(path)
        if p.occurrence is not None:
            idx = [self._find(p.segment, p.occurrence)]
            if idx[0] < 0:
                return []
        else:
            idx = [i for i, n in enumerate(self._names) if n == p.segment]
        d = self._d
        out: list[str] = []
        for i in idx:
            f = self._field_list(i)
            if p.field >= len(f) or not f[p.field]:
                continue
            v = f[p.field]
            if i == 0 and p.field <= 2:
                out.append(v)
            elif p.repetition is not None:
                out.append(pick(v, p.repetition, p.component, p.subcomponent, d))
            else:
                out.extend(narrow(r, p.component, p.subcomponent, d, True)
                           for r in v.split(d.repetition))
        return out

    def segments(self, name: str | None = None) -> list[Segment]:
        """All segments named ``name`` (every segment when ``None``), in order."""
        return [Segment(self, i) for i, n in enumerate(self._names) if name is None or n == name]

    def segment(self, name: str, occurrence: int = 1) -> Segment | None:
        """The ``occurrence``-th (1-based) segment named ``name``, or ``None``."""
        i = self._find(name, occurrence)
        return None if i < 0 else Segment(self, i)

    def groups(self, start: str, members: set[str] | frozenset[str]) -> list[list[Segment]]:
        """Each ``start`` segment with the ``members`` segments that follow it.

        A group ends at the next ``start`` segment or at the first segment that is not
        in ``members``; segments outside any group are ignored.  E.g.
        ``groups("ORC", {"OBR", "TQ1", "IPC", "ZDS", "NTE"})``.
        """
        out: list[list[Segment]] = []
        cur: list[Segment] | None = None
        for i, n in enumerate(self._names):
            if n == start:
                cur = [Segment(self, i)]
                out.append(cur)
            elif cur is not None and n in members:
                cur.append(Segment(self, i))
            else:
                cur = None
        return out

    @property
    def segment_names(self) -> list[str]:
        return list(self._names)

    # -- building ----------------------------------------------------------------------
    def set(self, path: str, value: str, *, escape_value: bool = True) -> None:
        """Set the element at ``path``; missing fields/components/segments are created.

        ``value`` is escaped (it becomes one leaf) unless ``escape_value=False``, in
        which case it must already be ER7 for that level and may not contain a
        delimiter of that level or above.  Without repetition and component
        (``PID-3``) the whole field, all repetitions, is replaced; otherwise an
        absent repetition means the first.  A missing segment is appended.
        """
        p = compile_path(path)
        if p.is_msh_delimiter:
            raise ValueError("MSH-1 and MSH-2 (the delimiters) cannot be changed with set()")
        d = self._d
        if escape_value:
            value = escape(value, d)
        else:
            banned = [d.field, "\r", "\n"]
            if p.repetition is not None or p.component is not None:
                banned.append(d.repetition)
            if p.component is not None:
                banned.append(d.component)
            if p.subcomponent is not None:
                banned.append(d.subcomponent)
            bad = [c for c in banned if c in value]
            if bad:
                raise ValueError(f"raw value for {path} contains delimiter {bad[0]!r}")
        i = self._find(p.segment, p.occurrence)
        while i < 0:
            self._segs.append(p.segment)
            self._names.append(p.segment)
            self._fields.append([p.segment])
            i = self._find(p.segment, p.occurrence)
        f = list(self._field_list(i))
        if len(f) <= p.field:
            f.extend([""] * (p.field + 1 - len(f)))
        f[p.field] = replace(f[p.field], p, value, d)
        self._store(i, f)

    def encode(self, segment_sep: str = "\r", *, trailing: bool | None = None) -> str:
        """ER7 text; ``trailing`` adds a final separator (default: as parsed)."""
        out = segment_sep.join(self._segs)
        if self._trailing if trailing is None else trailing:
            out += segment_sep
        return out

    # -- dunder ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments())

    def __len__(self) -> int:
        return len(self._segs)

    def __str__(self) -> str:
        return self.encode()

    def __repr__(self) -> str:
        return f"<HL7Message {self.message_type} {self.control_id!r} v{self.version}>"

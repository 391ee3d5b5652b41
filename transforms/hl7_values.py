"""Reading HL7 values for a mapping: scoped field readers, structured values, ERR locations.

Scope: ``run.scope`` maps a segment name to the segments visible by that name — every
segment of the message, or inside ``foreach`` over a group, the group's own segments
(a group member the group lacks is an empty list, so ``IPC-1`` inside a v2.3.1 ORC group
reads "" rather than another group's IPC).  ``run.fields`` holds the same segments'
field lists, split once per run, which is what readers use.

A path that stops above a leaf (``PID-5``, ``PID-3.4``) reads a *structured value*: its
components unescaped and joined with ``^`` (subcomponents with ``&``), whatever the
message's own delimiters, e.g. ``TESTPATIENT^ALICE^M`` — the shape DICOM PN expects.
A leaf (``PID-5.1``, ``PID-3.4.2``) is the unescaped text.
"""

from __future__ import annotations

from engine.hl7 import Delimiters, Path, Segment, unescape
from transforms.runtime import Reader, Run

__all__ = ["Chars", "chars_of", "err_location", "first_location", "first_of", "hl7_all_reader",
           "hl7_reader", "scope_of", "translate_delimiters", "value_at"]


def scope_of(segments: list[Segment]) -> tuple[dict[str, list[Segment]],
                                               dict[str, list[list[str]]]]:
    """Segments by name, in message order, and their field lists (read once per run)."""
    scope: dict[str, list[Segment]] = {}
    fields: dict[str, list[list[str]]] = {}
    for seg in segments:
        name = seg.name
        if name in scope:
            scope[name].append(seg)
            fields[name].append(seg.fields)
        else:
            scope[name] = [seg]
            fields[name] = [seg.fields]
    return scope, fields


def _joined(v: str, d: Delimiters) -> str:
    """Encoded components → unescaped parts joined with ``^`` and ``&``."""
    sub = d.subcomponent
    if d.escape not in v:
        if d.component == "^" and sub == "&":
            return v
        return v.replace(d.component, "^").replace(sub, "&")
    return "^".join("&".join(unescape(s, d) for s in c.split(sub)) for c in v.split(d.component))


Chars = tuple[str, str, str, str, Delimiters]  # repetition, component, subcomponent, escape


def chars_of(d: Delimiters) -> Chars:
    """The delimiter characters as a plain tuple (NamedTuple attribute reads are slow)."""
    return (d.repetition, d.component, d.subcomponent, d.escape, d)


def value_at(f: str, rep: int, comp: int | None, sub: int | None, ch: Chars) -> str:
    """The value at ``[rep].comp.sub`` of the encoded field ``f``: a leaf unescaped, a
    field or component with structure as a structured value; "" when absent."""
    r, c, s, e, d = ch
    if r in f:
        parts = f.split(r)
        if rep > len(parts):
            return ""
        f = parts[rep - 1]
    elif rep != 1:
        return ""
    if comp is None:
        if c in f or s in f or e in f:
            return _joined(f, d)
        return f
    if comp == 1:
        i = f.find(c)
        if i >= 0:
            f = f[:i]
    elif c in f:
        parts = f.split(c)
        if comp > len(parts):
            return ""
        f = parts[comp - 1]
    else:
        return ""
    if sub is None:
        if e in f:
            return "&".join(unescape(x, d) for x in f.split(s))
        return f if s == "&" or s not in f else f.replace(s, "&")
    if s in f:
        parts = f.split(s)
        if sub > len(parts):
            return ""
        f = parts[sub - 1]
    elif sub != 1:
        return ""
    return unescape(f, d) if e in f else f


def hl7_reader(p: Path) -> Reader:
    """A reader of ``p`` in the current scope ("" when absent)."""
    name, field, rep, comp = p.segment, p.field, p.repetition or 1, p.component
    if p.is_msh_delimiter:
        def delimiter(run: Run) -> str:
            segs = run.fields.get(name)
            if not segs or rep != 1 or comp not in (None, 1):
                return ""
            return segs[0][field]

        return delimiter
    return _single(p)


def first_of(paths: list[Path]) -> Reader:
    """One reader for ``from: [A, B, ...]`` of plain input paths: the first non-empty
    value (the fused equivalent of reading each path in turn)."""
    if len(paths) == 1 and not paths[0].is_msh_delimiter:
        return _single(paths[0])
    specs = [(p.segment, (p.occurrence or 1) - 1, p.field, p.repetition or 1, p.component,
              p.subcomponent) for p in paths]

    def first(run: Run) -> str:
        table, ch = run.fields, run.chars
        for name, idx, field, rep, comp, sub in specs:
            segs = table.get(name)
            if segs is None or len(segs) <= idx:
                continue
            fields = segs[idx]
            if field < len(fields):
                f = fields[field]
                if f:
                    v = value_at(f, rep, comp, sub, ch)
                    if v:
                        return v
        return ""

    return first


def _single(p: Path) -> Reader:
    name, idx, field = p.segment, (p.occurrence or 1) - 1, p.field
    rep, comp, sub = p.repetition or 1, p.component, p.subcomponent

    def one(run: Run) -> str:
        segs = run.fields.get(name)
        if segs is None or len(segs) <= idx:
            return ""
        fields = segs[idx]
        if field >= len(fields):
            return ""
        f = fields[field]
        return value_at(f, rep, comp, sub, run.chars) if f else f

    return one


def hl7_all_reader(p: Path) -> Reader:
    """A reader of every non-empty repetition of ``p`` (``PV1-15[*]``) as a list."""
    name, idx, field = p.segment, (p.occurrence or 1) - 1, p.field
    comp, sub = p.component, p.subcomponent

    def read(run: Run) -> list[str]:
        segs = run.fields.get(name)
        if segs is None or len(segs) <= idx or field >= len(segs[idx]):
            return []
        ch = run.chars
        raw = segs[idx][field]
        count = raw.count(ch[0]) + 1 if raw else 0
        values = (value_at(raw, i, comp, sub, ch) for i in range(1, count + 1))
        return [v for v in values if v]

    return read


def err_location(run: Run, p: Path) -> str:
    """ERR-2 style location of ``p`` in the current scope, e.g. ``OBR^1^18`` or
    ``PID^1^3^1^1`` (segment, sequence in the message, field[, repetition, component[, sub]])."""
    seq = p.occurrence or 1
    segs = run.scope.get(p.segment) or []
    if run.msg is not None and len(segs) >= seq:
        target = segs[seq - 1].index
        seq = sum(1 for s in run.msg.segments(p.segment) if s.index <= target)
    loc = f"{p.segment}^{seq}^{p.field}"
    if p.repetition is not None or p.component is not None:
        loc += f"^{p.repetition or 1}"
        if p.component is not None:
            loc += f"^{p.component}"
            if p.subcomponent is not None:
                loc += f"^{p.subcomponent}"
    return loc


def first_location(run: Run, paths: list[Path]) -> str:
    """Location of the first path whose segment is in scope, else of the first path."""
    for p in paths:
        if run.scope.get(p.segment):
            return err_location(run, p)
    return err_location(run, paths[0]) if paths else ""


def translate_delimiters(raw: str, src: Delimiters, dst: Delimiters) -> str:
    """Re-encode raw ER7 ``raw`` from ``src`` delimiters to ``dst`` (escapes keep their
    letters, only the escape character changes)."""
    if src == dst:
        return raw
    pairs = zip(src[:5], dst[:5], strict=True)  # field, component, repetition, escape, sub
    table: dict[str, str | int | None] = {a: b for a, b in pairs if a and b and a != b}
    return raw.translate(str.maketrans(table))

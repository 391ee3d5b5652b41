"""Navigating and editing one encoded field string (repetition/component/subcomponent).

Pure functions on ER7 text, shared by ``HL7Message`` and ``Segment``.  Reading
rules (documented on ``HL7Message.get``): an absent repetition means the first;
the result is unescaped only when it is a leaf, i.e. contains no further
component/subcomponent delimiter — otherwise its encoded text is returned so the
structure (and any escaped delimiter inside it) stays unambiguous.
"""

from __future__ import annotations

from engine.hl7.delimiters import Delimiters
from engine.hl7.escaping import unescape
from engine.hl7.paths import Path

__all__ = ["narrow", "pick", "replace"]


def narrow(v: str, comp: int | None, sub: int | None, d: Delimiters, decode: bool) -> str:
    """Select ``comp``/``sub`` inside one repetition ``v`` and unescape leaves."""
    if comp is None:
        if decode and d.escape in v and d.component not in v and d.subcomponent not in v:
            return unescape(v, d)
        return v
    c = d.component
    if c in v:
        parts = v.split(c)
        if comp > len(parts):
            return ""
        v = parts[comp - 1]
    elif comp != 1:
        return ""
    s = d.subcomponent
    if sub is None:
        if decode and d.escape in v and s not in v:
            return unescape(v, d)
        return v
    if s in v:
        parts = v.split(s)
        if sub > len(parts):
            return ""
        v = parts[sub - 1]
    elif sub != 1:
        return ""
    if decode and d.escape in v:
        return unescape(v, d)
    return v


def pick(
    v: str,
    rep: int | None,
    comp: int | None,
    sub: int | None,
    d: Delimiters,
    *,
    decode: bool = True,
) -> str:
    """Value at ``[rep].comp.sub`` of the encoded field ``v`` ("" when absent)."""
    if not v:
        return v
    r = d.repetition
    if rep is None or rep == 1:
        i = v.find(r)
        if i >= 0:
            v = v[:i]
    else:
        parts = v.split(r)
        if rep > len(parts):
            return ""
        v = parts[rep - 1]
    return narrow(v, comp, sub, d, decode)


def _set_nth(text: str, sep: str, n: int, new: str) -> str:
    parts = text.split(sep) if text else [""]
    if len(parts) < n:
        parts.extend([""] * (n - len(parts)))
    parts[n - 1] = new
    return sep.join(parts)


def replace(field: str, p: Path, new: str, d: Delimiters) -> str:
    """Return ``field`` with the element at ``p``'s ``[rep].comp.sub`` set to encoded ``new``.

    With neither ``rep`` nor ``comp`` the whole field (every repetition) is replaced;
    otherwise an absent ``rep`` means the first repetition.  Missing repetitions,
    components and subcomponents are created empty.
    """
    rep, comp, sub = p.repetition, p.component, p.subcomponent
    if rep is None and comp is None:
        return new
    n = rep or 1
    reps = field.split(d.repetition) if field else [""]
    if len(reps) < n:
        reps.extend([""] * (n - len(reps)))
    target = reps[n - 1]
    if comp is None:
        target = new
    elif sub is None:
        target = _set_nth(target, d.component, comp, new)
    else:
        comps = target.split(d.component) if target else [""]
        if len(comps) < comp:
            comps.extend([""] * (comp - len(comps)))
        comps[comp - 1] = _set_nth(comps[comp - 1], d.subcomponent, sub, new)
        target = d.component.join(comps)
    reps[n - 1] = target
    return d.repetition.join(reps)

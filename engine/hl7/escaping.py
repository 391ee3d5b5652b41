"""HL7 v2 escape sequences (chapter 2, "Use of escape sequences in text fields").

``unescape`` turns ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\P\\`` and ``\\Xhh..\\`` back into text;
formatting (``\\.br\\``, ``\\.sp\\`` ...), highlighting (``\\H\\``/``\\N\\``), charset switches
(``\\C..\\``/``\\M..\\``), locally defined ``\\Z..\\`` and anything unrecognised are kept
verbatim, as is an unterminated escape (so ``\\E\\R\\`` is ``\\R\\``: python-hl7 #84).
``escape`` is its inverse for arbitrary text: ``unescape(escape(s, d), d) == s``.
"""

from __future__ import annotations

import re

from engine.hl7.delimiters import Delimiters

__all__ = ["escape", "unescape"]

_HEX_RE = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_ESCAPE_TABLES: dict[Delimiters, dict[int, str]] = {}
_UNESCAPE_MAPS: dict[Delimiters, dict[str, str]] = {}


def _unescape_map(d: Delimiters) -> dict[str, str]:
    m = _UNESCAPE_MAPS.get(d)
    if m is None:
        m = {
            "F": d.field,
            "S": d.component,
            "T": d.subcomponent,
            "R": d.repetition,
            "E": d.escape,
        }
        if d.truncation:
            m["P"] = d.truncation
        if len(_UNESCAPE_MAPS) > 64:
            _UNESCAPE_MAPS.clear()
        _UNESCAPE_MAPS[d] = m
    return m


def _decode_hex(digits: str) -> str | None:
    """``\\Xhh..\\`` payload → text; ``None`` when it is not well-formed hex."""
    if _HEX_RE.fullmatch(digits) is None:
        return None
    data = bytes.fromhex(digits)
    if len(data) == 1:
        return data.decode("latin-1")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def unescape(value: str, d: Delimiters, *, line_break: str | None = None) -> str:
    """Resolve HL7 escape sequences in one leaf value.

    ``line_break``: replacement for ``\\.br\\`` (default: keep the sequence verbatim,
    so formatted text survives a round trip untouched).
    """
    esc = d.escape
    if esc not in value:
        return value
    simple = _unescape_map(d)
    out: list[str] = []
    pos = 0
    find = value.find
    while True:
        start = find(esc, pos)
        if start < 0:
            break
        end = find(esc, start + 1)
        if end < 0:
            break  # unterminated: the rest is kept verbatim
        out.append(value[pos:start])
        seq = value[start + 1 : end]
        rep = simple.get(seq)
        if rep is None:
            if seq[:1] == "X" and len(seq) > 1:
                rep = _decode_hex(seq[1:])
            elif seq == ".br" and line_break is not None:
                rep = line_break
            if rep is None:
                rep = value[start : end + 1]
        out.append(rep)
        pos = end + 1
    out.append(value[pos:])
    return "".join(out)


def _escape_table(d: Delimiters) -> dict[int, str]:
    t = _ESCAPE_TABLES.get(d)
    if t is None:
        e = d.escape
        t = {
            ord(d.escape): f"{e}E{e}",
            ord(d.field): f"{e}F{e}",
            ord(d.component): f"{e}S{e}",
            ord(d.subcomponent): f"{e}T{e}",
            ord(d.repetition): f"{e}R{e}",
            ord("\r"): f"{e}X0D{e}",
            ord("\n"): f"{e}X0A{e}",
        }
        if d.truncation:
            t[ord(d.truncation)] = f"{e}P{e}"
        if len(_ESCAPE_TABLES) > 64:
            _ESCAPE_TABLES.clear()
        _ESCAPE_TABLES[d] = t
    return t


def escape(value: str, d: Delimiters) -> str:
    """Escape delimiters, the escape character, CR and LF so ``value`` is one leaf."""
    return value.translate(_escape_table(d))

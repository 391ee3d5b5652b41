"""Tokenizer of the condition language (``when:`` and ``from:`` expressions).

Token kinds:

* ``str``    ``'text'`` or ``"text"``; ``\\\\``, ``\\'`` and ``\\"`` are escapes, any other
  backslash is kept as written so regular expressions read naturally (``"^\\d+$"``)
* ``num``    ``12``, ``3.5``
* ``hl7``    an HL7 path: ``PID-3``, ``PID-3[2].1``, ``OBR[2]-4.1.2``, ``PV1-15[*]`` (every
  repetition); optionally ``out.``-prefixed
* ``name``   a name or record path: ``empty``, ``PatientName``, ``Seq[0].Key``, ``out.X``
* ``var``    ``$name``
* ``op``     ``== != < <= > >= ( ) [ ] ,``
* ``kw``     ``and or not in matches true false``
* ``end``    the end of the text

Every token keeps its 0-based start position so errors can point at it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from transforms.errors import ExpressionError

__all__ = ["KEYWORDS", "Token", "tokenize"]

KEYWORDS = frozenset({"and", "or", "not", "in", "matches", "true", "false"})
MAX_LENGTH = 4000

_HL7 = r"[A-Z][A-Z0-9]{2}(?:\[[0-9]+\])?-[0-9]+(?:\[(?:[0-9]+|\*)\])?(?:\.[0-9]+(?:\.[0-9]+)?)?"
_HL7_RE = re.compile(rf"(?:out\.)?{_HL7}(?![A-Za-z0-9_\[.-])")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\[[0-9]+\]|\.[A-Za-z_][A-Za-z0-9_]*)*")
_VAR_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_NUM_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?(?![A-Za-z_])")
_OPS = ("==", "!=", "<=", ">=", "<", ">", "(", ")", "[", "]", ",")
_BAD_PATH = ("invalid HL7 path: expected an upper-case segment and 1-based numbers, like "
             "'PID-3', 'PID-3[2].1', 'PID-3.4.1' or 'OBR[2]-4.1'")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"'}


class Token(NamedTuple):
    kind: str
    text: str
    pos: int
    value: str = ""  # the decoded text of a string literal


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens (ending with an ``end`` token); raises ``ExpressionError``."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is too long (at most {MAX_LENGTH} characters)", 0, text)
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        if ch in "'\"":
            i = _string(text, i, out)
            continue
        m = _HL7_RE.match(text, i)
        if m is not None:
            out.append(Token("hl7", m.group(), i))
            i = m.end()
            continue
        m = _NAME_RE.match(text, i)
        if m is not None:
            word = m.group()
            if text.startswith("-", m.end()) and len(word) == 3:
                raise ExpressionError(_BAD_PATH, i, text)
            out.append(Token("kw" if word in KEYWORDS else "name", word, i))
            i = m.end()
            continue
        m = _VAR_RE.match(text, i)
        if m is not None:
            out.append(Token("var", m.group(1), i))
            i = m.end()
            continue
        m = _NUM_RE.match(text, i)
        if m is not None:
            out.append(Token("num", m.group(), i))
            i = m.end()
            continue
        op = next((o for o in _OPS if text.startswith(o, i)), None)
        if op is not None:
            out.append(Token("op", op, i))
            i += len(op)
            continue
        raise ExpressionError(_unexpected(text, i), i, text)
    out.append(Token("end", "", n))
    return out


def _string(text: str, start: int, out: list[Token]) -> int:
    quote = text[start]
    chars: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in _ESCAPES:
            chars.append(_ESCAPES[text[i + 1]])
            i += 2
            continue
        if ch == quote:
            out.append(Token("str", text[start : i + 1], start, "".join(chars)))
            return i + 1
        chars.append(ch)
        i += 1
    raise ExpressionError(f"unterminated string: add the closing {quote}", start, text)


def _unexpected(text: str, i: int) -> str:
    ch = text[i]
    if ch == "=":
        return "unexpected '=': compare with '=='"
    if ch == "!":
        return "unexpected '!': use 'not' or '!='"
    if ch in "&|":
        return f"unexpected {ch!r}: use 'and' / 'or'"
    if ch == "$":
        return "'$' must be followed by a variable name, e.g. $accession"
    if re.match(r"[A-Za-z0-9]{3}(\[[0-9]*\])?-", text[i:]):
        return _BAD_PATH
    return f"unexpected character {ch!r}"

"""Substitute ``${VAR}`` environment references in the string values of a loaded file.

Syntax, inside any string value (never in keys):

* ``${NAME}`` -- the variable's value; an unset variable is a problem.
* ``${NAME:-default}`` -- the default when the variable is unset *or empty* (as in a
  shell or Docker Compose); the default may be empty and may not contain ``${``.
* ``$${`` -- a literal ``${``.  A ``$`` anywhere else is kept as it is.

When a *plain* (unquoted) scalar is exactly one reference, the substituted text is read
again by YAML's scalar rules, so ``port: ${PORT:-2575}`` gives the int 2575 and
``enabled: ${ON:-true}`` the bool True.  An empty result stays the empty string ``""``
(YAML would read it as null), and timestamps stay strings.  Quote the value
(``"${PORT}"``) to always get a string.  Substituted values are never parsed further,
so an environment variable cannot inject YAML structure.

Problems are positioned at the ``${`` of the offending reference when it can be found
in the source text, else at the start of the scalar.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engine.config.loader import LoadedYAML, Position, ScalarInfo, YamlPath, read_plain_scalar
from engine.config.problems import ConfigProblem, sort_problems

_START = re.compile(r"\$\$\{|\$\{")
_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)


class VariableReference(NamedTuple):
    """One ``${NAME}`` or ``${NAME:-default}`` written in the file."""

    name: str
    has_default: bool
    line: int
    col: int


@dataclass
class InterpolationResult:
    """Interpolated data, the problems found, and which values were affected."""

    data: Any
    problems: list[ConfigProblem] = field(default_factory=list)
    unresolved: set[YamlPath] = field(default_factory=set)
    """Paths whose value referenced an unset variable (their value is not meaningful)."""
    retyped: dict[YamlPath, str] = field(default_factory=dict)
    """Paths whose value YAML re-read from a whole-value reference, with the source text."""


class _Token(NamedTuple):
    text: str  # as written, e.g. "${PORT:-2575}"
    name: str | None  # None for an escape or a malformed reference
    default: str | None
    problem: str | None  # set for malformed references


_ESCAPE = _Token("$${", None, None, None)


def interpolate(loaded: LoadedYAML, env: Mapping[str, str]) -> tuple[Any, list[ConfigProblem]]:
    """Return a copy of ``loaded.data`` with references substituted, and the problems."""
    result = interpolate_detailed(loaded, env)
    return result.data, result.problems


def interpolate_detailed(loaded: LoadedYAML, env: Mapping[str, str]) -> InterpolationResult:
    """Like :func:`interpolate`, also telling which paths were unresolved or re-typed."""
    result = InterpolationResult(data=None)
    result.data = _walk(loaded, env, loaded.data, (), result)
    result.problems = sort_problems(result.problems)  # an aliased value is seen once per use
    return result


def referenced_variables(loaded: LoadedYAML) -> list[VariableReference]:
    """Every well-formed reference in the file, in source order (for lint and docs)."""
    found: set[VariableReference] = set()
    for path, text in _strings(loaded.data, ()):
        for token, (line, col) in _located(loaded, _info(loaded, path), text):
            if isinstance(token, _Token) and token.name is not None:
                found.add(VariableReference(token.name, token.default is not None, line, col))
    return sorted(found, key=lambda ref: (ref.line, ref.col, ref.name))


def _walk(loaded: LoadedYAML, env: Mapping[str, str], value: Any, path: YamlPath,
          result: InterpolationResult) -> Any:
    if isinstance(value, dict):
        return {key: _walk(loaded, env, item, (*path, key), result) for key, item in value.items()}
    if isinstance(value, list):
        return [_walk(loaded, env, item, (*path, i), result) for i, item in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        return _substitute(loaded, env, value, path, result)
    return value


def _substitute(loaded: LoadedYAML, env: Mapping[str, str], text: str, path: YamlPath,
                result: InterpolationResult) -> Any:
    pieces: list[str] = []
    ok = True
    for token, (line, col) in _located(loaded, _info(loaded, path), text):
        if isinstance(token, str):
            pieces.append(token)
            continue
        if token is _ESCAPE:
            pieces.append("${")
            continue
        if token.problem is not None:
            ok = False
            result.problems.append(ConfigProblem(loaded.filename, line, col, token.problem))
            pieces.append(token.text)
            continue
        assert token.name is not None
        value = env.get(token.name)
        if token.default is not None and not value:
            value = token.default
        if value is None:
            ok = False
            name = token.name
            message = (f"environment variable {name} is not set "
                       f"(use ${{{name}:-default}} to give a default)")
            result.problems.append(ConfigProblem(loaded.filename, line, col, message))
            value = ""
        pieces.append(value)
    if not ok:
        result.unresolved.add(path)
    substituted = "".join(pieces)
    whole = _whole_reference(text)
    if whole and _info(loaded, path).style is None and substituted:
        typed = read_plain_scalar(substituted)
        if not isinstance(typed, str):
            result.retyped[path] = text
        return typed
    return substituted


def _whole_reference(text: str) -> bool:
    tokens = list(_tokens(text))
    return len(tokens) == 1 and isinstance(tokens[0], _Token) and tokens[0].name is not None


def _tokens(text: str) -> Iterator[_Token | str]:
    """Split ``text`` into literal strings, escapes and references, in order."""
    pos = 0
    while (match := _START.search(text, pos)) is not None:
        if match.start() > pos:
            yield text[pos : match.start()]
        if match.group() == "$${":
            yield _ESCAPE
            pos = match.end()
            continue
        close = text.find("}", match.end())
        if close < 0:
            written = text[match.start() :]
            yield _Token(written, None, None,
                         f"unterminated variable reference '{written}' (missing '}}')")
            return
        written = text[match.start() : close + 1]
        yield _parse(written, text[match.end() : close])
        pos = close + 1
    if pos < len(text):
        yield text[pos:]


def _parse(written: str, body: str) -> _Token:
    body_match = _BODY.fullmatch(body)
    if body_match is None or "${" in (body_match.group("default") or ""):
        return _Token(written, None, None,
                      f"invalid variable reference '{written}': expected ${{NAME}} or "
                      "${NAME:-default} (write $${ for a literal ${)")
    return _Token(written, body_match.group("name"), body_match.group("default"), None)


def _located(loaded: LoadedYAML, info: ScalarInfo,
             text: str) -> Iterator[tuple[_Token | str, Position]]:
    """The tokens of ``text``, each with its source position where it can be found.

    The source of the scalar is searched left to right for each escape and reference as
    written; anything not found there (escaped in a quoted string, or folded across
    lines) is positioned at the start of the scalar.
    """
    raw = loaded.text[info.start : info.end]
    search_from = 0
    for token in _tokens(text):
        position = (info.line, info.col)
        if isinstance(token, _Token):
            index = raw.find(token.text, search_from)
            if index >= 0:
                search_from = index + len(token.text)
                absolute = info.start + index
                line_start = loaded.text.rfind("\n", 0, absolute) + 1
                position = (loaded.text.count("\n", 0, absolute) + 1, absolute - line_start + 1)
        yield token, position


def _info(loaded: LoadedYAML, path: YamlPath) -> ScalarInfo:
    info = loaded.scalars.get(path)
    if info is not None:
        return info
    line, col = loaded.marks.get(path, (1, 1))
    return ScalarInfo(line, col, 0, 0, "'")  # unknown origin: position only, never re-typed


def _strings(value: Any, path: YamlPath) -> Iterator[tuple[YamlPath, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, (*path, i))
    elif isinstance(value, str):
        yield path, value

"""Compile a parsed condition into a closure ``fn(run) -> value``; never ``eval``/``exec``.

References (HL7 paths, record paths, ``out.…``, ``$vars``) are compiled by the caller's
``Resolver``, which knows the mapping's input and output kinds and records what it saw
for lint.  Regular expressions after ``matches`` are compiled here, once.

Comparison rules: ``==``/``!=`` compare text, except that a number on either side
compares numerically with a value that reads as a number (``len(OBR-18) == 16``,
``PID-8 == 1`` is false for ``"F"``).  ``<``, ``<=``, ``>``, ``>=`` compare numbers when
both sides read as numbers, text otherwise.  ``x in (..)`` / ``x in [..]`` test membership;
``x in "text"`` tests for a substring; a list value matches ``matches`` when any item does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from transforms.errors import ExpressionError
from transforms.expr_parser import BoolOp, Call, Compare, ListLit, Lit, Node, Not, Ref, parse
from transforms.runtime import Reader, Run, is_empty, text_of, truthy

__all__ = ["FUNCTIONS", "Resolver", "compile_expression", "compile_node"]


class Resolver(Protocol):
    """What the expression compiler needs from the mapping compiler."""

    def reference(self, kind: str, text: str, pos: int) -> Reader:
        """Compile a reference (``kind`` is hl7 | name | var); raise ``ExpressionError``."""
        ...

    def table_keys(self, name: str, pos: int) -> Callable[[str], bool]:
        """Membership test of a lookup table's keys, for ``known(table, x)``."""
        ...


def _len(v: Any) -> int:
    if v is None:
        return 0
    if isinstance(v, str | list | dict | tuple):
        return len(v)
    return len(text_of(v))


def _map_text(fn: Callable[[str], str]) -> Callable[[Any], Any]:
    def apply(v: Any) -> Any:
        if isinstance(v, list):
            return [fn(text_of(x)) for x in v]
        return fn(text_of(v))

    return apply


#: name → (arity, implementation); ``known`` is compiled specially (its first argument is
#: a table name, not a value).
FUNCTIONS: dict[str, tuple[int, Callable[[Any], Any]]] = {
    "empty": (1, is_empty),
    "present": (1, lambda v: not is_empty(v)),
    "upper": (1, _map_text(str.upper)),
    "lower": (1, _map_text(str.lower)),
    "trim": (1, _map_text(str.strip)),
    "len": (1, _len),
}
_ALL_FUNCTIONS = (*FUNCTIONS, "known")


def compile_expression(text: str, resolver: Resolver) -> Reader:
    """Parse and compile ``text``; raises ``ExpressionError`` (with a position)."""
    return compile_node(parse(text), resolver, text)


def compile_node(node: Node, resolver: Resolver, text: str) -> Reader:
    if isinstance(node, Lit):
        value = node.value
        return lambda run: value
    if isinstance(node, Ref):
        return resolver.reference(node.kind, node.text, node.pos)
    if isinstance(node, ListLit):
        fns = [compile_node(i, resolver, text) for i in node.items]
        if all(isinstance(i, Lit) for i in node.items):
            values = [i.value for i in node.items if isinstance(i, Lit)]
            return lambda run: values
        return lambda run: [f(run) for f in fns]
    if isinstance(node, Not):
        inner = compile_node(node.operand, resolver, text)
        return lambda run: not truthy(inner(run))
    if isinstance(node, BoolOp):
        return _bool_op(node, [compile_node(i, resolver, text) for i in node.items])
    if isinstance(node, Compare):
        return _compare(node, resolver, text)
    return _call(node, resolver, text)


def _bool_op(node: BoolOp, fns: list[Reader]) -> Reader:
    if node.op == "and":
        def all_true(run: Run) -> bool:
            return all(truthy(f(run)) for f in fns)

        return all_true

    def any_true(run: Run) -> bool:
        return any(truthy(f(run)) for f in fns)

    return any_true


def _call(node: Call, resolver: Resolver, text: str) -> Reader:
    if node.name == "known":
        if len(node.args) != 2 or not isinstance(node.args[0], Ref) or node.args[0].kind != "name":
            raise ExpressionError("known() takes a table name and a value, e.g. "
                                  "known(modality, OBR-24)", node.pos, text)
        has = resolver.table_keys(node.args[0].text, node.args[0].pos)
        arg = compile_node(node.args[1], resolver, text)
        return lambda run: has(text_of(arg(run)))
    spec = FUNCTIONS.get(node.name)
    if spec is None:
        from transforms.suggest import did_you_mean

        raise ExpressionError(f"unknown function {node.name!r}"
                              f"{did_you_mean(node.name, _ALL_FUNCTIONS)}; known: "
                              f"{', '.join(_ALL_FUNCTIONS)}", node.pos, text)
    arity, fn = spec
    if len(node.args) != arity:
        raise ExpressionError(f"{node.name}() takes {arity} argument, got {len(node.args)}",
                              node.pos, text)
    arg = compile_node(node.args[0], resolver, text)
    return lambda run: fn(arg(run))


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def equal(a: Any, b: Any) -> bool:
    if _is_num(a) or _is_num(b):
        x, y = _number(a), _number(b)
        return x is not None and x == y
    if isinstance(a, bool) or isinstance(b, bool):
        return truthy(a) == truthy(b)
    if isinstance(a, list) or isinstance(b, list):
        return bool(a == b)
    return text_of(a) == text_of(b)


def _order(op: str, a: Any, b: Any) -> bool:
    x, y = _number(a), _number(b)
    left: Any
    right: Any
    if x is not None and y is not None:
        left, right = x, y
    else:
        left, right = text_of(a), text_of(b)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def contains(container: Any, needle: Any) -> bool:
    if isinstance(container, list | tuple):
        return any(equal(needle, item) for item in container)
    if isinstance(container, dict):
        return text_of(needle) in container
    if is_empty(container):
        return False
    return text_of(needle) in text_of(container)


def _membership(node: Compare, left: Reader, right: Reader, negate: bool) -> Reader:
    items = node.right.items if isinstance(node.right, ListLit) else None
    if items is not None and all(isinstance(i, Lit) and isinstance(i.value, str) for i in items):
        texts = frozenset(i.value for i in items if isinstance(i, Lit))
        values = list(texts)

        def in_texts(run: Run) -> bool:
            v = left(run)
            found = v in texts if isinstance(v, str) else contains(values, v)
            return bool(found) is not negate

        return in_texts
    if negate:
        return lambda run: not contains(right(run), left(run))
    return lambda run: contains(right(run), left(run))


def _compare(node: Compare, resolver: Resolver, text: str) -> Reader:
    left = compile_node(node.left, resolver, text)
    if node.op == "matches":
        assert isinstance(node.right, Lit)
        try:
            rx = re.compile(str(node.right.value))
        except re.error as exc:
            raise ExpressionError(f"invalid regular expression: {exc.msg}", node.right.pos,
                                  text) from None
        search = rx.search

        def matches(run: Run) -> bool:
            v = left(run)
            if isinstance(v, list):
                return any(search(text_of(x)) is not None for x in v)
            return search(text_of(v)) is not None

        return matches
    right = compile_node(node.right, resolver, text)
    op = node.op
    if op == "==":
        return lambda run: equal(left(run), right(run))
    if op == "!=":
        return lambda run: not equal(left(run), right(run))
    if op in ("in", "not in"):
        return _membership(node, left, right, negate=op == "not in")
    return lambda run: _order(op, left(run), right(run))

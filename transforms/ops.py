"""Ops: the value transformations listed under ``ops:`` of a ``set`` or ``let`` step.

An op is written as a name (``upper``), a one-key mapping (``{truncate: 16}``) or a
mapping with options beside the name (``{lookup: modality, default: OT}``).  Each op is
compiled once by its factory, which checks the arguments and raises ``OpSpecError``
(naming the offending key) for the mapping compiler to report with file:line:col.

Text ops apply to every item of a list value.  A failing op at run time raises
``OpFailed``; the step turns it into a rejection with the ERR location of its source.
This module holds the registry and the text ops; ``ops_data`` adds lookup, datetime and
derive_uid.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transforms.misses import LookupMissRegistry
from transforms.runtime import Op, Run, is_empty, text_of
from transforms.tables import LookupTable

__all__ = ["OPS", "OpContext", "OpFailed", "OpSpecError", "compile_op", "op_names"]


class OpSpecError(ValueError):
    """An op is written wrongly; ``key`` names the option at fault (``None``: the op itself)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key


class OpFailed(Exception):
    """An op cannot transform this value; becomes a rejection with ``error_code``."""

    def __init__(self, reason: str, error_code: str = "207") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_code = error_code


@dataclass
class OpContext:
    """What op factories may use: the mapping's tables and the miss registry."""

    mapping: str
    tables: dict[str, LookupTable] = field(default_factory=dict)
    misses: LookupMissRegistry = field(default_factory=LookupMissRegistry)
    tables_used: set[str] = field(default_factory=set)
    #: every declared table name, loaded or not (a table that failed to load is reported once)
    declared: set[str] = field(default_factory=set)


#: factory(argument, options beside the name, context) -> op
Factory = Callable[[Any, dict[str, Any], OpContext], Op]


@dataclass(frozen=True)
class OpSpec:
    factory: Factory
    options: tuple[str, ...] = ()
    needs_arg: bool = False


OPS: dict[str, OpSpec] = {}


def op_names() -> list[str]:
    return sorted(OPS)


def register(name: str, options: tuple[str, ...] = (), needs_arg: bool = False
             ) -> Callable[[Factory], Factory]:
    def deco(factory: Factory) -> Factory:
        OPS[name] = OpSpec(factory, options, needs_arg)
        return factory

    return deco


def compile_op(spec: Any, ctx: OpContext) -> Op:
    """Compile one entry of ``ops:``; raises ``OpSpecError``."""
    from transforms.suggest import did_you_mean

    if isinstance(spec, str):
        name, arg, options = spec, None, {}
    elif isinstance(spec, dict) and spec:
        names = [k for k in spec if k in OPS]
        if len(names) > 1:  # {lookup: t, default: X}: 'default' is also an op name
            names = [k for k in names if all(o == k or o in OPS[k].options for o in spec)]
        if len(names) != 1:
            found = [k for k in spec if k in OPS]
            if found:
                raise OpSpecError(f"one op per entry, found {', '.join(found)}")
            first = next(iter(spec))
            raise OpSpecError(f"unknown op {first!r}{did_you_mean(str(first), OPS)}", str(first))
        name = names[0]
        arg = spec[name]
        options = {k: v for k, v in spec.items() if k != name}
    else:
        raise OpSpecError("an op is a name (upper) or a mapping ({truncate: 16})")
    op = OPS.get(name)
    if op is None:
        raise OpSpecError(f"unknown op {name!r}{did_you_mean(name, OPS)}", name)
    if isinstance(arg, dict) and op.options:
        options = {**arg, **options}
        arg = None
    for key in options:
        if key not in op.options:
            allowed = f"; options: {', '.join(op.options)}" if op.options else " (it takes none)"
            raise OpSpecError(f"{name}: unknown option {key!r}{did_you_mean(key, op.options)}"
                              f"{allowed}", key)
    if op.needs_arg and arg is None and not options:
        raise OpSpecError(f"{name} needs an argument, e.g. {{{name}: ...}}", name)
    return op.factory(arg, options, ctx)


def each(fn: Callable[[str], Any]) -> Op:
    """Apply a text function to a value, or to every item of a list value."""
    def apply(value: Any, run: Run) -> Any:
        if value.__class__ is str:
            return fn(value)
        if isinstance(value, list):
            return [fn(text_of(v)) for v in value]
        return fn(text_of(value))

    return apply


def _no_arg(name: str, arg: Any) -> None:
    if arg is not None:
        raise OpSpecError(f"{name} takes no argument (write it as '{name}')", name)


def _text_arg(name: str, arg: Any, key: str | None = None) -> str:
    if isinstance(arg, bool) or arg is None or isinstance(arg, dict | list):
        raise OpSpecError(f"{name} needs a text argument", key or name)
    return str(arg)


def _int_arg(name: str, arg: Any, minimum: int = 0) -> int:
    if isinstance(arg, bool) or not isinstance(arg, int) or arg < minimum:
        raise OpSpecError(f"{name} needs a whole number ≥ {minimum}", name)
    return arg


@register("upper")
def _upper(arg: Any, options: dict[str, Any], ctx: OpContext) -> Op:
    _no_arg("upper", arg)
    return each(str.upper)


@register("lower")
def _lower(arg: Any, options: dict[str, Any], ctx: OpContext) -> Op:
    _no_arg("lower", arg)
    return each(str.lower)


@register("trim")
def _trim(arg: Any, options: dict[str, Any], ctx: OpContext) -> Op:
    chars = None if arg is None else _text_arg("trim", arg)
    return each(lambda s: s.strip(chars))


@register("default", needs_arg=True)
def _default(arg: Any, options: dict[str, Any], ctx: OpContext) -> Op:
    fallback = _text_arg("default", arg) if not isinstance(arg, list) else arg
    return lambda value, run: fallback if is_empty(value) else value


@register("prefix", needs_arg=True)
def _prefix(arg: Any, options: dict[str, Any], ctx: OpContext) -> Op:
    text = _text_arg("prefix", arg)
    return each(lambda s: text + s if s else s)


@register("suffix", needs_arg=True)
def _suffix(arg: Any, options: dict[str, Any], ctx: OpContext) -> Op:
    text = _text_arg("suffix", arg)
    return each(lambda s: s + text if s else s)


@register("truncate", needs_arg=True)
def _truncate(arg: Any, options: dict[str, Any], ctx: OpContext) -> Op:
    n = _int_arg("truncate", arg, 1)
    return each(lambda s: s[:n])


@register("replace", options=("pattern", "with", "count"), needs_arg=True)
def _replace(arg: Any, options: dict[str, Any], ctx: OpContext) -> Op:
    if "pattern" not in options:
        raise OpSpecError("replace needs {pattern: <regex>, with: <text>}", "replace")
    pattern = _text_arg("replace", options["pattern"], "pattern")
    repl = "" if options.get("with") is None else _text_arg("replace", options["with"], "with")
    count = _int_arg("replace count", options.get("count", 0))
    try:
        rx = re.compile(pattern)
        rx.sub(repl, "")  # validates group references in the replacement
    except re.error as exc:
        raise OpSpecError(f"replace: invalid regular expression or replacement: {exc}",
                          "pattern") from None
    return each(lambda s: rx.sub(repl, s, count=count))


@register("split", options=("separator", "index"), needs_arg=True)
def _split(arg: Any, options: dict[str, Any], ctx: OpContext) -> Op:
    sep = _text_arg("split", arg if arg is not None else options.get("separator"), "separator")
    if not sep:
        raise OpSpecError("split: the separator cannot be empty", "separator")
    index = options.get("index")
    if index is None:
        return lambda value, run: [] if is_empty(value) else text_of(value).split(sep)
    i = _int_arg("split index", index)

    def pick(value: Any, run: Run) -> str:
        parts = text_of(value).split(sep)
        return parts[i] if i < len(parts) else ""

    return pick


@register("join", needs_arg=True)
def _join(arg: Any, options: dict[str, Any], ctx: OpContext) -> Op:
    sep = _text_arg("join", arg)
    return lambda value, run: (sep.join(text_of(v) for v in value if not is_empty(v))
                               if isinstance(value, list) else value)


@register("first")
def _first(arg: Any, options: dict[str, Any], ctx: OpContext) -> Op:
    _no_arg("first", arg)
    return lambda value, run: text_of(value) if isinstance(value, list) else value


@register("component", needs_arg=True)
def _component(arg: Any, options: dict[str, Any], ctx: OpContext) -> Op:
    n = _int_arg("component", arg, 1)
    return each(lambda s: (s.split("^") + [""] * n)[n - 1])


@register("components", needs_arg=True)
def _components(arg: Any, options: dict[str, Any], ctx: OpContext) -> Op:
    if isinstance(arg, list):
        order = [_int_arg("components", n, 1) for n in arg]
    else:
        order = list(range(1, _int_arg("components", arg, 1) + 1))
    if not order:
        raise OpSpecError("components needs a count or a list of component numbers", "components")
    width = max(order)

    def select(s: str) -> str:
        parts = s.split("^")
        if len(parts) < width:
            parts += [""] * (width - len(parts))
        return "^".join([parts[n - 1] for n in order]).rstrip("^")

    return each(select)

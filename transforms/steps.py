"""Step compilers for ``set`` and ``let``, and the table of every step kind's compiler
(``foreach`` is in ``step_blocks``, ``copy`` in ``step_copy``, ``filter``/``reject``/``route``
in ``step_flow``).  Each returns a closure ``step(run)`` or ``None`` after reporting its
problems on the compiler.

``set``/``let`` value pipeline: source (``from`` — first non-empty wins — or ``value``
or ``concat``) → ``ops`` in order → ``default`` when empty → ``required`` check →
``max_length`` policy (``set`` only) → write.  An empty result is not written, so an
earlier value of the target stays.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.config.loader import YamlPath
from engine.hl7 import Path
from transforms.errors import Rejected
from transforms.hl7_values import first_location, first_of
from transforms.ops import OpFailed, OpSpecError, compile_op
from transforms.refs import RefScope, constant
from transforms.runtime import Op, Reader, Run, StepFn, is_empty, text_of
from transforms.spec import LENGTH_POLICIES
from transforms.step_blocks import compile_foreach
from transforms.step_copy import compile_copy
from transforms.step_flow import compile_filter, compile_reject, compile_route
from transforms.targets import compile_target

if TYPE_CHECKING:
    from transforms.compiler import Block, Compiler

__all__ = ["COMPILERS"]

_ROUTE = re.compile(r"[A-Za-z0-9_.-]+")
_PLAIN_PATH = re.compile(r"[A-Z][A-Z0-9]{2}(\[[0-9]+\])?-[0-9]+(\[[0-9]+\])?(\.[0-9]+){0,2}")
_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _source(c: Compiler, raw: dict[str, Any], loc: YamlPath, rs: RefScope, label: str
            ) -> tuple[Reader, list[Path]] | None:
    given = [k for k in ("from", "value", "concat") if k in raw]
    if len(given) != 1:
        c.problem(loc, "give exactly one of 'from', 'value' or 'concat'" if given else
                  "needs a source: 'from' (field paths, first non-empty wins), 'value' or "
                  "'concat'", label, key=True)
        return None
    key = given[0]
    if key == "value":
        value = c.param_value(c.scalar_text(raw["value"], (*loc, "value"), label),
                              (*loc, "value"), label)
        if isinstance(value, list):
            return constant([text_of(v) for v in value]), []
        if isinstance(value, dict):
            c.problem((*loc, "value"), "value must be a text or a list of texts", label)
            return None
        return constant(text_of(value)), []
    items = raw[key] if isinstance(raw[key], list) else [raw[key]]
    if not items:
        c.problem((*loc, key), f"'{key}' is empty", label)
        return None
    fns: list[Reader] = []
    paths: list[Path] = []
    for i, item in enumerate(items):
        item_loc = (*loc, key, i) if isinstance(raw[key], list) else (*loc, key)
        compiled = c.expr(item, item_loc, rs, label)
        if compiled is not None:
            fns.append(compiled[0])
            paths.extend(compiled[1])
    if len(fns) != len(items):
        return None
    if key == "from":
        if c.input == "hl7" and all(isinstance(i, str) and _PLAIN_PATH.fullmatch(i)
                                    for i in items):
            return first_of(paths), paths  # fused: no closure per source
        return _first_non_empty(fns), paths
    sep = raw.get("separator", "")
    skip = raw.get("skip_empty", True)
    if not isinstance(sep, str) or not isinstance(skip, bool):
        c.problem(loc, "separator must be a text and skip_empty true or false", label)
        return None

    def concat(run: Run) -> str:
        parts = [text_of(f(run)) for f in fns]
        return sep.join(p for p in parts if p) if skip else sep.join(parts)

    return concat, paths


def _first_non_empty(fns: list[Reader]) -> Reader:
    if len(fns) == 1:
        return fns[0]

    def first(run: Run) -> Any:
        for f in fns:
            v = f(run)
            if v or (v is not None and v != "" and not isinstance(v, list | dict | tuple)):
                return v
        return ""

    return first


def _ops(c: Compiler, raw: dict[str, Any], loc: YamlPath, label: str) -> list[Op] | None:
    specs = raw.get("ops", [])
    if not isinstance(specs, list):
        specs = [specs]
    out: list[Op] = []
    ok = True
    for i, written in enumerate(specs):
        op_loc = (*loc, "ops", i) if isinstance(raw.get("ops"), list) else (*loc, "ops")
        spec = _with_params(c, written, op_loc, label)
        try:
            out.append(compile_op(spec, c.ops))
        except OpSpecError as exc:
            at = (*op_loc, exc.key) if exc.key and isinstance(spec, dict) else op_loc
            c.problem(at, exc.message, label, key=exc.key is not None and isinstance(spec, dict))
            ok = False
    return out if ok else None


def _with_params(c: Compiler, spec: Any, loc: YamlPath, label: str) -> Any:
    """``$name`` option values inside an op spec → the parameter's value."""
    if isinstance(spec, dict):
        return {k: _with_params(c, v, (*loc, k), label) for k, v in spec.items()}
    return c.param_value(spec, loc, label)


def _pipeline(c: Compiler, raw: dict[str, Any], loc: YamlPath, rs: RefScope, label: str,
              name: str) -> tuple[Reader, list[Path]] | None:
    """source → ops → default → required, as one reader; ``None`` after problems."""
    source = _source(c, raw, loc, rs, label)
    ops = _ops(c, raw, loc, label)
    default = c.param_value(c.scalar_text(raw.get("default"), (*loc, "default"), label),
                            (*loc, "default"), label)
    if isinstance(default, dict):
        c.problem((*loc, "default"), "default must be a text or a list", label)
        return None
    if default is not None and not isinstance(default, list):
        default = text_of(default)
    required = raw.get("required", False)
    if not isinstance(required, bool | str):
        c.problem((*loc, "required"), "required is true, false or the reason to reject with",
                  label)
        return None
    if source is None or ops is None:
        return None
    read, paths = source
    reason = required if isinstance(required, str) else f"required value {name} is missing"
    if not ops and default is None and not required:
        return read, paths

    def transformed(run: Run) -> Any:
        v = read(run)
        try:
            for op in ops:
                v = op(v, run)
        except OpFailed as exc:
            raise Rejected(f"{name}: {exc.reason}", exc.error_code,
                           first_location(run, paths)) from None
        return v

    if len(ops) == 1:
        only = ops[0]

        def transformed_once(run: Run) -> Any:
            try:
                return only(read(run), run)
            except OpFailed as exc:
                raise Rejected(f"{name}: {exc.reason}", exc.error_code,
                               first_location(run, paths)) from None

        transformed = transformed_once  # the common one-op case: one call less

    if default is None and not required:
        return transformed, paths
    source_of = transformed if ops else read

    def value(run: Run) -> Any:
        v = source_of(run)
        if not v and is_empty(v):
            if default is not None:
                return default
            raise Rejected(reason, "101", first_location(run, paths))
        return v

    return value, paths


def compile_set(c: Compiler, raw: dict[str, Any], loc: YamlPath, rs: RefScope, label: str,
                block: Block) -> StepFn | None:
    target_text = raw["set"]
    target = compile_target(c, target_text, (*loc, "set"), label, block, "when" in raw)
    pipeline = _pipeline(c, raw, loc, rs, label, str(target_text))
    limit = raw.get("max_length")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        c.problem((*loc, "max_length"), "max_length must be a whole number ≥ 1", label)
        return None
    policy = c.param_value(raw.get("on_overflow", c.length_policy), (*loc, "on_overflow"), label)
    if policy not in LENGTH_POLICIES:
        c.problem((*loc, "on_overflow"), f"on_overflow must be one of "
                  f"{', '.join(LENGTH_POLICIES)}", label)
        return None
    if target is None or pipeline is None:
        return None
    write = target
    value, paths = pipeline
    if limit is None:
        def step(run: Run) -> None:
            v = value(run)
            if v or not is_empty(v):
                write(run, v)

        return step
    n, truncate, name = limit, policy == "truncate", str(target_text)

    def fit(run: Run, text: str) -> str:
        if len(text) <= n:
            return text
        if truncate:
            run.warnings.append(f"{name} truncated to {n} characters (was {len(text)})")
            return text[:n]
        raise Rejected(f"{name} is too long: {len(text)} characters, at most {n} allowed",
                       "104", first_location(run, paths))

    def limited(run: Run) -> None:
        v = value(run)
        if isinstance(v, str):
            if v:
                write(run, v if len(v) <= n else fit(run, v))
        elif not is_empty(v):
            write(run, [fit(run, text_of(x)) for x in v] if isinstance(v, list)
                  else fit(run, text_of(v)))

    return limited


def compile_let(c: Compiler, raw: dict[str, Any], loc: YamlPath, rs: RefScope, label: str,
                block: Block) -> StepFn | None:
    name = raw["let"]
    if not isinstance(name, str) or not _VAR.fullmatch(name):
        c.problem((*loc, "let"), "let needs a variable name such as accession (used as "
                  "$accession)", label)
        return None
    if name in c.params:
        c.problem((*loc, "let"), f"${name} is already a parameter; choose another name", label)
        return None
    c.facts.lets.setdefault(name, (label, c.pos((*loc, "let"))))
    pipeline = _pipeline(c, raw, loc, rs, label, f"${name}")
    if pipeline is None:
        return None
    value = pipeline[0]
    c.var_paths.setdefault(name, []).extend(pipeline[1])

    def step(run: Run) -> None:
        run.vars[name] = value(run)

    return step


Compile = Callable[["Compiler", dict[str, Any], YamlPath, RefScope, str, "Block"],
                   StepFn | None]

COMPILERS: dict[str, Compile] = {
    "set": compile_set,
    "let": compile_let,
    "copy": compile_copy,
    "foreach": compile_foreach,
    "filter": compile_filter,
    "reject": compile_reject,
    "route": compile_route,
}

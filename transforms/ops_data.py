"""Ops that consult data: ``lookup`` (tables, with miss counting), ``datetime`` and
``derive_uid``.  Registered into ``transforms.ops.OPS`` on import.

``lookup``: ``{lookup: modality}`` or ``{lookup: station, column: station_name,
default: ANY, on_miss: reject | keep | empty}``.  An empty value is passed through without
a lookup.  A miss is always counted in the miss registry; then ``default`` is used if
given (with a warning), else ``on_miss`` decides: ``reject`` (the default, HL7 error 103
"Table value not found"), ``keep`` the value as it was, or ``empty``.

``datetime``: ``{datetime: {from: hl7, to: DA}}`` (see ``transforms.dates``), with
``pad: true`` to fill missing parts and ``on_error: reject | empty | keep`` for values that
are not dates (default ``reject``, HL7 error 102 "Data type error").

``derive_uid``: a stable DICOM UID derived from the value (``2.25.`` + the decimal form
of a name-based UUID), e.g. a Study Instance UID derived from the accession number, so
the same order always gets the same UID.
"""

from __future__ import annotations

import uuid
from typing import Any

from transforms.dates import DateFormatError, compile_format
from transforms.ops import OpContext, OpFailed, OpSpecError, each, register
from transforms.runtime import Op, Run, is_empty, text_of

__all__ = ["UID_NAMESPACE"]

#: namespace of ``derive_uid`` (a fixed random UUID: changing it changes every derived UID)
UID_NAMESPACE = uuid.UUID("6f1d3a52-8c1e-4d5b-9a57-2b8f0e6c4d21")
_ON_MISS = ("reject", "keep", "empty")
_ON_ERROR = ("reject", "empty", "keep")
_CACHE_SIZE = 4096


@register("lookup", options=("column", "default", "on_miss"), needs_arg=True)
def _lookup(arg: Any, options: dict[str, Any], ctx: OpContext) -> Op:
    from transforms.suggest import did_you_mean

    if not isinstance(arg, str):
        raise OpSpecError("lookup needs a table name: {lookup: modality}", "lookup")
    table = ctx.tables.get(arg)
    if table is None and arg in ctx.declared:
        ctx.tables_used.add(arg)
        return lambda value, run: value  # its load problem is already reported
    if table is None:
        known = ", ".join(sorted(ctx.declared)) or "none declared"
        raise OpSpecError(f"unknown table {arg!r}{did_you_mean(arg, ctx.declared)} "
                          f"(tables: {known})", "lookup")
    ctx.tables_used.add(arg)
    column = options.get("column")
    if column is not None and column not in table.columns:
        raise OpSpecError(f"table {arg!r} has no column {column!r} (columns: "
                          f"{', '.join(table.columns)})", "column")
    on_miss = options.get("on_miss", "reject")
    if on_miss not in _ON_MISS:
        raise OpSpecError(f"on_miss must be one of {', '.join(_ON_MISS)}", "on_miss")
    has_default = "default" in options
    default = "" if options.get("default") is None else str(options.get("default"))
    get, name, mapping, registry = table.get, arg, ctx.mapping, ctx.misses

    def look(key: str, run: Run) -> str:
        if not key:
            return key
        found = get(key, column)
        if found is not None:
            return found
        registry.record(mapping, name, key)
        if has_default:
            run.warnings.append(f"lookup miss: no {key!r} in table {name!r}; "
                                f"used the default {default!r}")
            return default
        if on_miss == "keep":
            return key
        if on_miss == "empty":
            return ""
        raise OpFailed(f"no entry for {key!r} in table {name!r}", "103")

    def apply(value: Any, run: Run) -> Any:
        if value.__class__ is str:
            return look(value, run)
        if isinstance(value, list):
            return [look(text_of(v), run) for v in value]
        return look(text_of(value), run)

    return apply


@register("datetime", options=("from", "to", "pad", "on_error"), needs_arg=True)
def _datetime(arg: Any, options: dict[str, Any], ctx: OpContext) -> Op:
    if arg is not None:
        raise OpSpecError("datetime takes options: {datetime: {from: hl7, to: DA}}", "datetime")
    formats = []
    for key, default in (("from", "hl7"), ("to", None)):
        fmt = options.get(key, default)
        if not isinstance(fmt, str):
            raise OpSpecError(f"datetime needs '{key}': a format such as DA, TM, DT, hl7 or "
                              "'%Y%m%d'", key if key in options else "datetime")
        try:
            formats.append(compile_format(fmt))
        except DateFormatError as exc:
            raise OpSpecError(f"datetime: {exc}", key) from None
    source, target = formats
    pad = bool(options.get("pad", False))
    on_error = options.get("on_error", "reject")
    if on_error not in _ON_ERROR:
        raise OpSpecError(f"on_error must be one of {', '.join(_ON_ERROR)}", "on_error")

    cache: dict[str, str] = {}  # the op is a pure function of its text: remember answers

    def convert(text: str) -> str:
        if not text:
            return text
        found = cache.get(text)
        if found is not None:
            return found
        try:
            result = target.format(source.parse_cached(text), pad)
        except DateFormatError as exc:
            if on_error == "empty":
                return ""
            if on_error == "keep":
                return text
            raise OpFailed(f"{exc}", "102") from None
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[text] = result
        return result

    return each(convert)


@register("derive_uid")
def _derive_uid(arg: Any, options: dict[str, Any], ctx: OpContext) -> Op:
    if arg is not None:
        raise OpSpecError("derive_uid takes no argument", "derive_uid")

    def derive(value: Any, run: Run) -> Any:
        if is_empty(value):
            return value
        return f"2.25.{uuid.uuid5(UID_NAMESPACE, text_of(value)).int}"

    return derive

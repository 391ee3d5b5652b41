"""Validate loaded data against a pydantic model and explain each error at its line:col.

Pydantic locations are not YAML paths: a discriminated union adds the tag
(``('channels', 'ris', 'source', 'mllp_listener', 'port')``), a plain union the member
name (``'int'``), a dict key error ``'[key]'``.  :func:`locate` walks the model's types
and the data side by side, drops the parts where the type is a union and follows the
rest into the data as far as it goes: that gives the YAML path for the marks, and the
model there, whose field names feed the "did you mean" suggestions.

Messages are written for the analyst editing the file::

    unknown field 'prot' (did you mean 'port'?)           at the key
    missing required field 'host'                         at the key of the parent mapping
    'type' must be one of: mllp_listener, file_reader (got 'mllp_listner')
    port: Input should be a valid integer, got 'abc'
"""

from __future__ import annotations

import ast
import difflib
import os
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, RootModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from engine.config.interpolate import interpolate_detailed
from engine.config.loader import LoadedYAML, YamlPath, load_file, mark_for
from engine.config.problems import ConfigProblem, has_errors, sort_problems

M = TypeVar("M", bound=BaseModel)
_MAPPING_ERRORS = {"model_type", "model_attributes_type", "dict_type", "mapping_type"}
_LIST_ERRORS = {"list_type", "tuple_type", "set_type", "frozen_set_type", "iterable_type"}
_PREFIXES = ("Value error, ", "Assertion failed, ")


@dataclass(frozen=True)
class Located:
    """Where a pydantic location lands: the YAML path found and the type expected there."""

    path: YamlPath  # the deepest part of the location that exists in the data
    node: Any  # the data at ``path``
    type: Any  # the annotation expected at the location, or None when unknown
    discriminator: str | None = None


def validate_model(model: type[M], data: Any, loaded: LoadedYAML,
                   filename: str) -> tuple[M | None, list[ConfigProblem]]:
    """Validate ``data``; return the instance, or None and one problem per error."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, problems_from_exception(exc, loaded, filename, model=model, data=data)


def problems_from_exception(exc: ValidationError, loaded: LoadedYAML, filename: str, *,
                            model: type[BaseModel] | None = None,
                            data: Any = None) -> list[ConfigProblem]:
    """Convert every entry of a ``ValidationError`` into a positioned problem.

    ``data`` defaults to ``loaded.data`` (interpolation changes values, not structure);
    without ``model`` there are no suggestions from field names.
    """
    data = loaded.data if data is None else data
    return sort_problems(p for _, p in _convert(exc, loaded, filename, model, data))


def load_and_validate(path: str, model: type[M], env: Mapping[str, str] = os.environ,
                      ) -> tuple[M | None, list[ConfigProblem]]:
    """Load, interpolate and validate a file, returning every problem of every stage.

    A syntax error stops at loading.  Otherwise loader, interpolation and validation
    problems are combined; validation errors on a value whose ``${VAR}`` is unset are
    left out (the unset variable is the problem).  The instance is None when any
    problem is an error.
    """
    loaded = load_file(path)
    if not loaded.parsed:
        return None, sort_problems(loaded.problems)
    result = interpolate_detailed(loaded, env)
    problems = [*loaded.problems, *result.problems]
    instance: M | None = None
    try:
        instance = model.model_validate(result.data)
    except ValidationError as exc:
        converted = _convert(exc, loaded, loaded.filename, model, result.data,
                             retyped=result.retyped)
        problems += [problem for found, problem in converted if found not in result.unresolved]
    problems = sort_problems(problems)
    return (None if has_errors(problems) else instance), problems


def locate(loc: Sequence[str | int], data: Any, model: Any = None) -> Located:
    """Map a pydantic error location onto the YAML path, dropping union tags."""
    annotation, discriminator = _unwrap(model)
    path: list[str | int] = []
    node = data
    for part in loc:
        if _is_union(annotation):
            annotation, discriminator = _unwrap(_member(annotation, discriminator, part))
            continue
        annotation, discriminator = _unwrap(_child_type(annotation, part))
        if not _contains(node, part):
            continue  # a tag, '[key]', or a missing field: not in the data
        node = node[part]
        path.append(part)
    return Located(tuple(path), node, annotation, discriminator)


def _convert(exc: ValidationError, loaded: LoadedYAML, filename: str, model: Any, data: Any,
             *, retyped: Mapping[YamlPath, str] | None = None,
             ) -> list[tuple[YamlPath, ConfigProblem]]:
    errors = exc.errors(include_url=False)
    extras: dict[YamlPath, set[str]] = {}
    for error in errors:
        if error["type"] == "extra_forbidden" and error["loc"]:
            parent = locate(error["loc"][:-1], data, model).path
            extras.setdefault(parent, set()).add(str(error["loc"][-1]))
    converted = []
    for error in errors:
        found = locate(error["loc"], data, model)
        path, prefer_key, message = _explain(error, found, data, model, extras)
        if error["type"] == "string_type" and isinstance(error.get("input"), int | float):
            source = (retyped or {}).get(found.path)
            message += (f" (YAML read {source} as {_describe(error.get('input'))}; quote it: "
                        f'"{source}")' if source else " (put the value in quotes)")
        line, col = mark_for(loaded, path, prefer_key=prefer_key)
        converted.append((found.path, ConfigProblem(filename, line, col, message)))
    return converted


def _explain(error: ErrorDetails, found: Located, data: Any, model: Any,
             extras: dict[YamlPath, set[str]]) -> tuple[YamlPath, bool, str]:
    """The path to mark, whether to mark its key, and the message for one error."""
    kind, loc, value = error["type"], error["loc"], error.get("input")
    ctx, text = error.get("ctx") or {}, error["msg"].split(", unable to ")[0]
    if "[key]" in loc:
        return found.path, True, f"key {_describe(value)}: {text}"
    if kind == "extra_forbidden" and loc:
        owner = locate(loc[:-1], data, model)
        names = _field_names(owner.type)
        if names is None and isinstance(owner.node, dict):  # no model: the valid siblings
            names = [k for k in owner.node if k not in extras.get(owner.path, set())]
        return found.path, True, f"unknown field '{loc[-1]}'{_suggest(str(loc[-1]), names or [])}"
    if kind == "missing" and loc:
        return found.path, True, f"missing required field '{loc[-1]}'"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        name = found.discriminator or str(ctx.get("discriminator", "'type'")).strip("'\"")
        tags = _tags(found.type, name) or _literal_list(str(ctx.get("expected_tags", "")))
        if kind == "union_tag_not_found":
            one_of = f" (one of: {', '.join(tags)})" if tags else ""
            return found.path, True, f"missing required field '{name}'{one_of}"
        tag = str(ctx.get("tag", value))
        got = f"got {tag!r}{_suggest(tag, tags, tail=True)}"
        return (*found.path, name), False, f"'{name}' must be one of: {', '.join(tags)} ({got})"
    label = _label(found.path)
    if kind in _MAPPING_ERRORS:
        message = "the file is empty" if value is None and not found.path else \
            f"expected a mapping, got {_describe(value)}"
    elif kind in _LIST_ERRORS:
        message = f"expected a list, got {_describe(value)}"
    else:
        message = text
        for prefix in _PREFIXES:
            message = message.removeprefix(prefix)
        if not isinstance(value, dict | list) and ", got " not in message:
            message += f", got {_describe(value)}"
        if kind == "literal_error" and isinstance(value, str):
            message += _suggest(value, [str(v) for v in _literals(found.type)], tail=True)
    return found.path, False, f"{label}: {message}" if label else message


def _suggest(word: str, choices: Sequence[str], tail: bool = False) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f", did you mean '{close[0]}'?" if tail else f" (did you mean '{close[0]}'?)"
    if tail or not choices:
        return ""
    return f" (expected one of: {', '.join(choices)})"


def _describe(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return "an empty value" if value is None else str(value).lower()
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return str(value)


def _label(path: YamlPath) -> str:
    index = len(path)
    while index and isinstance(path[index - 1], int):
        index -= 1
    head = str(path[index - 1]) if index else ""
    return head + "".join(f"[{i}]" for i in path[index:])


def _contains(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return isinstance(part, str) and part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _literal_list(text: str) -> list[str]:
    try:
        values = ast.literal_eval(f"[{text}]")
    except (ValueError, SyntaxError):
        return [part.strip().strip("'\"") for part in text.split(",") if part.strip()]
    return [str(value) for value in values]


def _unwrap(annotation: Any) -> tuple[Any, str | None]:
    """Strip ``Annotated`` and ``Optional``; keep a discriminator found on the way."""
    discriminator = None
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation, *metadata = get_args(annotation)
            for meta in metadata:
                if isinstance(meta, FieldInfo) and isinstance(meta.discriminator, str):
                    discriminator = meta.discriminator
        elif _is_union(annotation) and len(_members(annotation)) == 1:
            annotation = _members(annotation)[0]
        elif isinstance(annotation, type) and issubclass(annotation, RootModel):
            annotation = annotation.model_fields["root"].annotation
        else:
            return annotation, discriminator


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _members(annotation: Any) -> list[Any]:
    return [arg for arg in get_args(annotation) if arg is not type(None)]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _member(union: Any, discriminator: str | None, part: str | int) -> Any:
    """The union member a pydantic location part (a tag or a member's name) stands for."""
    for member in _members(union):
        inner, _ = _unwrap(member)
        if getattr(inner, "__name__", None) == part:
            return member
        if _is_model(inner):
            fields = [discriminator] if discriminator else list(inner.model_fields)
            if any(part in _literals(_field_type(inner, name)) for name in fields):
                return member
    return None


def _field_type(model: type[BaseModel], name: str | None) -> Any:
    for field_name, info in model.model_fields.items():
        if name in (field_name, info.alias):
            return Annotated[info.annotation, info] if info.discriminator else info.annotation
    return None


def _child_type(annotation: Any, part: str | int) -> Any:
    if _is_model(annotation):
        return _field_type(annotation, str(part))
    origin, args = get_origin(annotation), get_args(annotation)
    if isinstance(origin, type) and issubclass(origin, Mapping) and len(args) == 2:
        return args[0] if part == "[key]" else args[1]
    if origin is tuple and args and isinstance(part, int):
        return args[0] if args[-1] is Ellipsis else args[min(part, len(args) - 1)]
    if isinstance(origin, type) and issubclass(origin, Sequence | set | frozenset) and args:
        return args[0]
    return None


def _literals(annotation: Any) -> list[Any]:
    annotation, _ = _unwrap(annotation)
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    if _is_union(annotation):
        return [value for member in _members(annotation) for value in _literals(member)]
    return []


def _tags(union: Any, discriminator: str) -> list[str]:
    models = [_unwrap(member)[0] for member in _members(union) if _is_union(union)]
    return [str(tag) for model in models if _is_model(model)
            for tag in _literals(_field_type(model, discriminator))]


def _field_names(annotation: Any) -> list[str] | None:
    fields = annotation.model_fields.items() if _is_model(annotation) else None
    return None if fields is None else [info.alias or name for name, info in fields]

"""Load YAML into plain Python data while remembering where every value came from.

PyYAML's constructors throw positions away, so we ask it only to *compose* the node
graph and build the plain data (dicts, lists, str, int, float, bool, None) ourselves.
On the way we record, for every location path such as
``("channels", "ris", "source", "port")`` (list indices are ints), the 1-based
``(line, col)`` of its value and, for mapping entries, of its key.

Problems PyYAML ignores or turns into tracebacks are reported as
:class:`~engine.config.problems.ConfigProblem` instead: syntax errors (fatal, nothing
else is loaded), duplicate keys (PyYAML silently keeps the last), non-string keys and
unsupported tags.  Anchors, aliases and merge keys (``<<: *base``,
``<<: [*a, *b]``) are resolved as PyYAML does: explicit keys win over merged ones and
earlier merge sources win over later ones.  Values that come from an alias or a merge
are positioned where the anchored node is written, since that is where to fix them.
YAML timestamps are kept as the strings written, so all data stays plain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from engine.config.problems import ConfigProblem

YamlPath = tuple[str | int, ...]
Position = tuple[int, int]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = {f"{_TAG}{name}" for name in ("null", "bool", "int", "float", "str")}
_MAX_NODES = 200_000  # guards against alias "billion laughs" expansion
_TOO_DEEP = "the document is nested too deeply"


@dataclass(frozen=True)
class ScalarInfo:
    """Where a string scalar is written: 1-based start, character span and quoting style."""

    line: int
    col: int
    start: int
    end: int
    style: str | None  # None for plain (unquoted) scalars, else one of ' " | >


@dataclass
class LoadedYAML:
    """A loaded YAML document: plain data plus the positions of every value and key."""

    filename: str
    text: str
    data: Any = None
    marks: dict[YamlPath, Position] = field(default_factory=dict)
    key_marks: dict[YamlPath, Position] = field(default_factory=dict)
    scalars: dict[YamlPath, ScalarInfo] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)
    parsed: bool = True  # False after a syntax error: data is None and marks are empty


def mark_for(loaded: LoadedYAML, loc: YamlPath, prefer_key: bool = False) -> Position:
    """Position of ``loc``, or of its nearest known ancestor (the mapping it belongs in).

    With ``prefer_key`` the key's position is used where the location is a mapping
    entry, so "unknown field" and "missing field" messages point at a key.
    """
    for depth in range(len(loc), -1, -1):
        path = tuple(loc[:depth])
        if prefer_key and path in loaded.key_marks:
            return loaded.key_marks[path]
        if path in loaded.marks:
            return loaded.marks[path]
    return (1, 1)


def scalar_value(tag: str, value: str) -> Any:
    """Construct a plain scalar (null, bool, int, float or str) the way YAML reads it."""
    if tag in _PLAIN_TAGS:
        try:
            return SafeConstructor().construct_object(yaml.ScalarNode(tag, value))
        except ValueError:  # the resolver accepts some it cannot build, e.g. 0x_
            return value
    return value  # timestamps and anything unusual stay the string that was written


def read_plain_scalar(text: str) -> Any:
    """Read ``text`` as YAML reads an unquoted scalar: ``2575`` -> 2575, ``true`` -> True."""
    resolver: Any = yaml.resolver.Resolver()
    return scalar_value(resolver.resolve(yaml.ScalarNode, text, (True, False)), text)


def load_file(path: str | Path) -> LoadedYAML:
    """Read and load a YAML file; unreadable or non-UTF-8 files become a fatal problem."""
    filename = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return _fatal(filename, "", 1, 1, f"cannot read file: {exc.strerror or exc}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        return _fatal(filename, "", line, col, "file is not valid UTF-8 text")
    return load_yaml(text, filename)


def load_yaml(text: str, filename: str) -> LoadedYAML:
    """Load one YAML document from ``text``; never raises for bad YAML."""
    text = text.removeprefix("\ufeff")
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        line, col, message = _describe_syntax_error(exc, text)
        return _fatal(filename, text, line, col, message)
    except yaml.reader.ReaderError as exc:
        line, col = _position_of(text, exc.position)
        what = f"#x{exc.character:04x}" if isinstance(exc.character, int) else "character"
        return _fatal(filename, text, line, col, f"unacceptable character {what}: {exc.reason}")
    except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML error above has a mark
        return _fatal(filename, text, 1, 1, f"YAML error: {exc}")
    except RecursionError:
        return _fatal(filename, text, 1, 1, _TOO_DEEP)
    loaded = LoadedYAML(filename=filename, text=text)
    if root is not None:
        builder = _Builder(loaded)
        try:
            loaded.data = builder.convert(root, ())
        except _TooLarge:
            line, col = _start(root)
            return _fatal(filename, text, line, col, "document expands to too many values "
                          "(aliases nested too deeply?)")
        except RecursionError:
            return _fatal(filename, text, *_start(root), _TOO_DEEP)
    return loaded


def _fatal(filename: str, text: str, line: int, col: int, message: str) -> LoadedYAML:
    problem = ConfigProblem(filename, line, col, message)
    return LoadedYAML(filename=filename, text=text, problems=[problem], parsed=False)


def _position_of(text: str, index: int) -> Position:
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def _start(node: yaml.Node) -> Position:
    return _start_of(node.start_mark)


def _start_of(mark: yaml.Mark) -> Position:
    return mark.line + 1, mark.column + 1


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def _describe_syntax_error(exc: yaml.MarkedYAMLError, text: str) -> tuple[int, int, str]:
    mark = exc.problem_mark or exc.context_mark
    line, col = _start_of(mark) if mark is not None else (1, 1)
    problem = (exc.problem or "invalid YAML").strip()
    context = (exc.context or "").strip()
    if context == "expected a single document in the stream":
        return line, col, "only one YAML document is allowed in a configuration file"
    index = mark.index if mark is not None else 0
    if problem.startswith("found undefined alias"):
        name = re.match(r"\*([^\s,\[\]{}]+)", text[index:])
        alias = f" '*{name.group(1)}'" if name else ""
        return line, col, f"undefined alias{alias} (define the anchor with '&' before using it)"
    message = f"YAML syntax error: {problem}"
    context_mark = exc.context_mark
    if context and context_mark is not None and _start_of(context_mark) != (line, col):
        message += f" ({context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
    if text[index : index + 1] == "\t":
        message += " (tabs are not allowed for indentation; use spaces)"
    if text[index - 1 : index + 1] == "${":
        message += " (inside [ ] or { }, put values that use ${...} in quotes)"
    return line, col, message


class _TooLarge(Exception):
    pass


class _Builder:
    """Turns a composed node graph into plain data, recording marks and problems."""

    def __init__(self, loaded: LoadedYAML) -> None:
        self.loaded = loaded
        self.active: set[int] = set()  # ids of collection nodes being converted (cycles)
        self.count = 0

    def problem(self, node: yaml.Node, message: str) -> None:
        line, col = _start(node)
        found = ConfigProblem(self.loaded.filename, line, col, message)
        if found not in self.loaded.problems:
            self.loaded.problems.append(found)

    def convert(self, node: yaml.Node, path: YamlPath) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            raise _TooLarge
        self.loaded.marks[path] = _start(node)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.active:
            self.problem(node, "recursive alias: a value cannot contain itself")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                self.check_tag(node, "seq")
                return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
            self.check_tag(node, "map")
            result: dict[str, Any] = {}
            entries = self.entries(node) if isinstance(node, yaml.MappingNode) else {}
            for key, (key_node, value_node) in entries.items():
                self.loaded.key_marks[(*path, key)] = _start(key_node)
                result[key] = self.convert(value_node, (*path, key))
                if value_node.start_mark.index == value_node.end_mark.index:  # `key:` alone
                    self.loaded.marks[(*path, key)] = _start(key_node)
            return result
        finally:
            self.active.discard(id(node))

    def check_tag(self, node: yaml.Node, kind: str) -> None:
        if node.tag != f"{_TAG}{kind}":
            self.problem(node, f"unsupported YAML tag '{_short_tag(node.tag)}'")

    def scalar(self, node: yaml.ScalarNode, path: YamlPath) -> Any:
        tag, value = node.tag, node.value
        if tag == f"{_TAG}str":
            line, col = _start(node)
            style = node.style or None
            info = ScalarInfo(line, col, node.start_mark.index, node.end_mark.index, style)
            self.loaded.scalars[path] = info
            return value
        if tag in _PLAIN_TAGS or tag == f"{_TAG}timestamp":
            return scalar_value(tag, value)
        self.problem(node, f"unsupported YAML tag '{_short_tag(tag)}'")
        return value

    def entries(self, node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Effective ``key -> (key node, value node)`` of a mapping, with merges applied."""
        merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        explicit: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == f"{_TAG}merge":
                for source in self.merge_sources(value_node):
                    self.active.add(id(source))
                    try:
                        for merged_key, entry in self.entries(source).items():
                            merged.setdefault(merged_key, entry)
                    finally:
                        self.active.discard(id(source))
                continue
            key = self.key_text(key_node)
            if key is None:
                continue
            if key in explicit:
                first = explicit[key][0].start_mark.line + 1
                self.problem(key_node, f"duplicate key '{key}' (first defined at line {first})")
            explicit[key] = (key_node, value_node)
        return {**merged, **explicit}

    def merge_sources(self, value: yaml.Node) -> list[yaml.MappingNode]:
        items = value.value if isinstance(value, yaml.SequenceNode) else [value]
        sources = [item for item in items if isinstance(item, yaml.MappingNode)]
        if len(sources) != len(items):
            self.problem(value, "merge key '<<' needs a mapping or a list of mappings")
        found: list[yaml.MappingNode] = []
        for source in sources:
            if id(source) in self.active:
                self.problem(source, "recursive alias: a mapping cannot merge itself")
            else:
                found.append(source)
        return found

    def key_text(self, key_node: yaml.Node) -> str | None:
        if not isinstance(key_node, yaml.ScalarNode):
            kind = "a list" if isinstance(key_node, yaml.SequenceNode) else "a mapping"
            self.problem(key_node, f"mapping keys must be strings, not {kind}")
            return None
        if key_node.tag != f"{_TAG}str":
            value = scalar_value(key_node.tag, key_node.value)
            kind = "null" if value is None else type(value).__name__
            self.problem(key_node, f"key {key_node.value!r} is read as {kind}, not a string "
                         f"(quote it: \"{key_node.value}\")")
        return str(key_node.value)

"""load_yaml / load_file: plain data, value and key marks, and YAML problems."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import loader as loader_module
from engine.config.loader import LoadedYAML, load_file, load_yaml, mark_for, read_plain_scalar


def load(text: str) -> LoadedYAML:
    return load_yaml(textwrap.dedent(text), "channels.yaml")


def messages(loaded: LoadedYAML) -> list[str]:
    return [str(p) for p in sorted(loaded.problems)]


CHANNELS = """\
channels:
  ris_orders:
    source:
      type: mllp_listener
      port: 2575
    destinations:
      - name: pacs
        host: "pacs.local"
"""


def test_data_is_plain_python() -> None:
    loaded = load(CHANNELS)
    assert loaded.parsed and loaded.problems == []
    assert loaded.data == yaml.safe_load(CHANNELS)


def test_marks_record_one_based_value_positions() -> None:
    loaded = load(CHANNELS)
    assert loaded.marks[("channels", "ris_orders", "source", "port")] == (5, 13)
    assert loaded.marks[("channels", "ris_orders", "source", "type")] == (4, 13)
    assert loaded.marks[()] == (1, 1)


def test_key_marks_point_at_keys() -> None:
    loaded = load(CHANNELS)
    assert loaded.key_marks[("channels", "ris_orders", "source", "port")] == (5, 7)
    assert loaded.key_marks[("channels", "ris_orders")] == (2, 3)


def test_list_items_are_indexed_by_int() -> None:
    loaded = load(CHANNELS)
    destinations = ("channels", "ris_orders", "destinations")
    assert loaded.marks[(*destinations, 0)] == (7, 9)
    assert loaded.marks[(*destinations, 0, "host")] == (8, 15)
    assert (*destinations, 0) not in loaded.key_marks


def test_string_scalars_record_span_and_quoting_style() -> None:
    loaded = load(CHANNELS)
    host = loaded.scalars[("channels", "ris_orders", "destinations", 0, "host")]
    assert host.style == '"'
    assert loaded.text[host.start : host.end] == '"pacs.local"'
    assert loaded.scalars[("channels", "ris_orders", "source", "type")].style is None
    assert ("channels", "ris_orders", "source", "port") not in loaded.scalars  # an int


def test_empty_value_is_marked_at_its_key() -> None:
    loaded = load("source:\nother: 1\n")
    assert loaded.data == {"source": None, "other": 1}
    assert loaded.marks[("source",)] == (1, 1)


def test_empty_document_gives_none_without_problems() -> None:
    loaded = load("# only a comment\n")
    assert loaded.parsed and loaded.data is None and loaded.problems == []


def test_syntax_error_becomes_positioned_problem_not_exception() -> None:
    loaded = load("""\
        channels:
          ris:
            port: 2575
           host: x
        """)
    assert not loaded.parsed and loaded.data is None
    [problem] = loaded.problems
    assert (problem.line, problem.col) == (4, 4)
    assert problem.message.startswith("YAML syntax error: ")


def test_syntax_error_mentions_where_the_construct_started() -> None:
    loaded = load("a: [1, 2\nb: 3\n")
    [problem] = loaded.problems
    assert problem.line == 2
    assert "flow sequence at line 1, column 4" in problem.message


def test_tab_indentation_gets_a_hint() -> None:
    [problem] = load("a:\n\tb: 1\n").problems
    assert (problem.line, problem.col) == (2, 1)
    assert "tabs are not allowed for indentation" in problem.message


def test_undefined_alias_is_reported_with_its_name() -> None:
    assert messages(load("a: 1\nb: *base\n")) == [
        "channels.yaml:2:4: undefined alias '*base' (define the anchor with '&' before using it)"
    ]


def test_second_document_is_rejected() -> None:
    assert messages(load("a: 1\n---\nb: 2\n")) == [
        "channels.yaml:2:1: only one YAML document is allowed in a configuration file"
    ]


def test_control_character_is_reported_at_its_position() -> None:
    [problem] = load("a: ok\nb: x\x07\n").problems
    assert (problem.line, problem.col) == (2, 5)
    assert "#x0007" in problem.message


def test_duplicate_key_reported_at_second_key_with_first_line() -> None:
    loaded = load("""\
        source:
          port: 2575
          host: a
          port: 2576
        """)
    assert messages(loaded) == [
        "channels.yaml:4:3: duplicate key 'port' (first defined at line 2)"
    ]
    assert loaded.parsed
    assert loaded.data == {"source": {"port": 2576, "host": "a"}}  # the last wins, as in PyYAML
    assert loaded.marks[("source", "port")] == (4, 9)


def test_non_string_keys_are_reported_with_a_quoting_hint() -> None:
    loaded = load("""\
        on: 1
        2575: x
        ~: y
        "yes": z
        """)
    assert messages(loaded) == [
        "channels.yaml:1:1: key 'on' is read as bool, not a string (quote it: \"on\")",
        "channels.yaml:2:1: key '2575' is read as int, not a string (quote it: \"2575\")",
        "channels.yaml:3:1: key '~' is read as null, not a string (quote it: \"~\")",
    ]
    assert loaded.data == {"on": 1, "2575": "x", "~": "y", "yes": "z"}


def test_collection_keys_are_reported_and_dropped() -> None:
    loaded = load("? [a, b]\n: 1\nc: 2\n")
    assert messages(loaded) == ["channels.yaml:1:3: mapping keys must be strings, not a list"]
    assert loaded.data == {"c": 2}


def test_alias_copies_the_anchored_value_with_marks_at_the_anchor() -> None:
    loaded = load("""\
        defaults: &retry
          max_attempts: 5
        dest:
          retry: *retry
        """)
    assert loaded.data["dest"]["retry"] == {"max_attempts": 5}
    assert loaded.marks[("dest", "retry", "max_attempts")] == (2, 17)
    assert loaded.key_marks[("dest", "retry")] == (4, 3)


def test_merge_key_explicit_keys_win_and_keep_their_marks() -> None:
    text = """\
        base: &base
          host: 0.0.0.0
          port: 2575
        source:
          <<: *base
          port: 2600
        """
    loaded = load(text)
    assert loaded.problems == []
    assert loaded.data["source"] == {"host": "0.0.0.0", "port": 2600}
    assert loaded.data == yaml.safe_load(textwrap.dedent(text))
    assert loaded.marks[("source", "port")] == (6, 9)
    assert loaded.marks[("source", "host")] == (2, 9)  # written in the anchor
    assert list(loaded.data["source"]) == ["host", "port"]


def test_merge_list_earlier_sources_win_like_pyyaml() -> None:
    text = """\
        a: &a {x: 1, y: 1}
        b: &b {y: 2, z: 2}
        c:
          <<: [*a, *b]
          w: 0
        """
    loaded = load(text)
    assert loaded.data["c"] == {"x": 1, "y": 1, "z": 2, "w": 0}
    assert loaded.data == yaml.safe_load(textwrap.dedent(text))
    assert loaded.marks[("c", "y")] == (1, 17)


def test_merge_sources_may_merge_in_turn() -> None:
    text = """\
        a: &a {x: 1}
        b: &b {<<: *a, y: 2}
        c: {<<: *b, z: 3}
        """
    loaded = load(text)
    assert loaded.data["c"] == {"x": 1, "y": 2, "z": 3}
    assert loaded.marks[("c", "x")] == (1, 11)


def test_merge_with_a_scalar_is_reported() -> None:
    loaded = load("a: 1\nb:\n  <<: nope\n  c: 2\n")
    assert messages(loaded) == [
        "channels.yaml:3:7: merge key '<<' needs a mapping or a list of mappings"
    ]
    assert loaded.data["b"] == {"c": 2}


def test_quoted_merge_key_is_an_ordinary_key() -> None:
    assert load('a: {"<<": 1}\n').data == {"a": {"<<": 1}}


def test_recursive_alias_is_reported_not_followed_forever() -> None:
    loaded = load("a: &a [1, *a]\n")
    assert messages(loaded) == [
        "channels.yaml:1:4: recursive alias: a value cannot contain itself"
    ]
    assert loaded.data == {"a": [1, None]}


def test_self_merge_is_reported() -> None:
    loaded = load("a: &a {x: 1, <<: *a}\nb: {<<: *a}\n")
    assert messages(loaded) == [
        "channels.yaml:1:4: recursive alias: a mapping cannot merge itself"
    ]
    assert loaded.data == {"a": {"x": 1}, "b": {"x": 1}}


def test_alias_bomb_is_refused() -> None:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    loaded = load("\n".join(lines) + "\n")
    assert not loaded.parsed
    assert "too many values" in loaded.problems[0].message


def test_timestamps_stay_the_strings_written() -> None:
    assert load("since: 2024-01-31\n").data == {"since": "2024-01-31"}


def test_unsupported_tags_are_reported() -> None:
    loaded = load("a: !Ref other\nb: !!binary aGk=\nc: !!set {x}\n")
    assert messages(loaded) == [
        "channels.yaml:1:4: unsupported YAML tag '!Ref'",
        "channels.yaml:2:4: unsupported YAML tag '!!binary'",
        "channels.yaml:3:4: unsupported YAML tag '!!set'",
    ]


def test_mark_for_returns_value_or_key_position() -> None:
    loaded = load(CHANNELS)
    port = ("channels", "ris_orders", "source", "port")
    assert mark_for(loaded, port) == (5, 13)
    assert mark_for(loaded, port, prefer_key=True) == (5, 7)


def test_mark_for_walks_up_to_the_nearest_known_ancestor() -> None:
    loaded = load(CHANNELS)
    missing = ("channels", "ris_orders", "source", "host")
    assert mark_for(loaded, missing) == (4, 7)  # the source mapping
    assert mark_for(loaded, missing, prefer_key=True) == (3, 5)  # the `source:` key
    assert mark_for(loaded, ("nowhere", 3)) == (1, 1)
    assert mark_for(load(""), ("a",)) == (1, 1)


def test_read_plain_scalar_follows_yaml_rules() -> None:
    assert read_plain_scalar("2575") == 2575
    assert read_plain_scalar("true") is True
    assert read_plain_scalar("1.5") == 1.5
    assert read_plain_scalar("~") is None
    assert read_plain_scalar("2024-01-31") == "2024-01-31"
    assert read_plain_scalar("[1, 2]") == "[1, 2]"


def test_scalars_pyyaml_cannot_build_stay_strings() -> None:
    assert read_plain_scalar("0x_") == "0x_"
    assert load("a: 0b_\n").data == {"a": "0b_"}


def test_load_file_reads_utf8_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "channels.yaml"
    path.write_bytes("\ufeffname: Zürich\n".encode())
    loaded = load_file(path)
    assert loaded.filename == str(path)
    assert loaded.data == {"name": "Zürich"}
    assert loaded.marks[("name",)] == (1, 7)


def test_load_file_missing_file_is_a_problem(tmp_path: Path) -> None:
    loaded = load_file(tmp_path / "nope.yaml")
    assert not loaded.parsed
    assert loaded.problems[0].message == "cannot read file: No such file or directory"


def test_load_file_invalid_utf8_is_positioned(tmp_path: Path) -> None:
    path = tmp_path / "channels.yaml"
    path.write_bytes(b"a: 1\nname: Z\xfcrich\n")
    [problem] = load_file(path).problems
    assert (problem.line, problem.col, problem.message) == (2, 8, "file is not valid UTF-8 text")


scalars = (
    st.none() | st.booleans() | st.integers()
    | st.floats(allow_nan=False) | st.text(max_size=12)
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=20,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*path, i))
    return found


@settings(max_examples=150, deadline=None)
@given(documents, st.booleans())
def test_any_plain_document_loads_like_safe_load_with_a_mark_everywhere(
    document: Any, flow: bool,
) -> None:
    text = yaml.safe_dump({"root": document}, default_flow_style=flow, allow_unicode=True)
    loaded = load_yaml(text, "f.yaml")
    assert loaded.problems == []
    expected = yaml.safe_load(text)
    assert loaded.data == expected
    lines = text.splitlines()
    for path in _paths(loaded.data):
        line, col = loaded.marks[path]
        value = _at(loaded.data, path)
        if isinstance(value, int) and not isinstance(value, bool):
            assert lines[line - 1][col - 1 :].startswith(str(value))
        if path and isinstance(path[-1], str):
            key_line, key_col = loaded.key_marks[path]
            assert lines[key_line - 1][key_col - 1 :].startswith((path[-1], "'", '"', "?"))


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def test_unquoted_reference_in_a_flow_collection_gets_a_quoting_hint() -> None:
    [problem] = load("source: {type: mllp_listener, port: ${PORT}}\n").problems
    assert (problem.line, problem.col) == (1, 38)
    assert problem.message.endswith("(inside [ ] or { }, put values that use ${...} in quotes)")


def test_invalid_utf8_column_counts_characters_not_bytes(tmp_path: Path) -> None:
    path = tmp_path / "channels.yaml"
    path.write_bytes("a: ü".encode() + b"\xff\n")
    [problem] = load_file(path).problems
    assert (problem.line, problem.col) == (1, 5)


def test_absurd_nesting_is_a_problem_not_a_crash() -> None:
    loaded = load("a: " + "[" * 2000 + "]" * 2000 + "\n")
    assert not loaded.parsed
    assert loaded.problems[0].message == "the document is nested too deeply"


def test_pure_python_loader_gives_the_same_data_and_marks(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = load(CHANNELS + "dup: 1\ndup: 2\n")
    monkeypatch.setattr(loader_module, "_Loader", yaml.SafeLoader)
    slow = load(CHANNELS + "dup: 1\ndup: 2\n")
    assert (slow.data, slow.marks, slow.key_marks) == (fast.data, fast.marks, fast.key_marks)
    assert slow.scalars == fast.scalars
    assert slow.problems == fast.problems
    [problem] = load("a: [1,\n").problems
    assert (problem.line, problem.col) == (2, 1)

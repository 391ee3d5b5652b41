"""validate_model: every pydantic error becomes a human message at the right line:col."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import BaseModel, ValidationError

from engine.config.interpolate import interpolate
from engine.config.loader import load_yaml
from engine.config.validate import locate, problems_from_exception, validate_model
from tests.engine.config.sample_models import (
    FileReaderConfig,
    MLLPListenerConfig,
    Retry,
    Root,
    Window,
)


def check(text: str, model: type[BaseModel] = Root) -> list[str]:
    loaded = load_yaml(textwrap.dedent(text), "channels.yaml")
    assert loaded.problems == []
    data, env_problems = interpolate(loaded, {})
    assert env_problems == []
    instance, problems = validate_model(model, data, loaded, "channels.yaml")
    assert (instance is None) == bool(problems)
    return [str(p) for p in problems]


VALID = """\
channels:
  ris_orders:
    source:
      type: mllp_listener
      port: 2575
    destinations:
      - name: pacs
        type: mllp_sender
        host: pacs.local
        port: 104
        retry: {max_attempts: 3}
  scans:
    source: {type: file_reader, path: /srv/in}
"""


def test_valid_file_gives_an_instance_and_no_problems() -> None:
    loaded = load_yaml(VALID, "channels.yaml")
    instance, problems = validate_model(Root, loaded.data, loaded, "channels.yaml")
    assert problems == []
    assert isinstance(instance, Root)
    assert instance.channels["ris_orders"].destinations[0].retry.max_attempts == 3
    assert isinstance(instance.channels["scans"].source, FileReaderConfig)


def test_unknown_field_points_at_key_with_suggestion() -> None:
    assert check("""\
        channels:
          ris:
            source:
              type: mllp_listener
              prot: 2575
        """) == [
        "channels.yaml:3:5: missing required field 'port'",
        "channels.yaml:5:7: unknown field 'prot' (did you mean 'port'?)",
    ]


def test_unknown_field_without_close_match_lists_the_fields() -> None:
    assert check("""\
        channels:
          ris:
            source: {type: file_reader, path: /in}
            colour: blue
        """) == [
        "channels.yaml:4:5: unknown field 'colour' (expected one of: source, destinations)"
    ]


def test_unknown_top_level_field() -> None:
    assert check("channels: {}\nchanels: {}\n") == [
        "channels.yaml:2:1: unknown field 'chanels' (did you mean 'channels'?)"
    ]


def test_missing_required_field_points_at_the_parent_key() -> None:
    assert check("""\
        channels:
          ris:
            source:
              type: mllp_listener
              host: 10.0.0.1
        """) == ["channels.yaml:3:5: missing required field 'port'"]


def test_missing_field_in_a_list_item_points_at_the_item() -> None:
    assert check("""\
        channels:
          ris:
            source: {type: file_reader, path: /in}
            destinations:
              - name: pacs
                type: mllp_sender
                port: 104
        """) == ["channels.yaml:5:9: missing required field 'host'"]


def test_missing_top_level_field_points_at_the_document() -> None:
    assert check("{}\n") == ["channels.yaml:1:1: missing required field 'channels'"]


def test_invalid_union_tag_points_at_the_type_value_with_choices() -> None:
    assert check("""\
        channels:
          ris:
            source:
              type: mllp_listner
              port: 2575
        """) == [
        "channels.yaml:4:13: 'type' must be one of: mllp_listener, file_reader "
        "(got 'mllp_listner', did you mean 'mllp_listener'?)"
    ]


def test_union_tag_far_from_any_choice_has_no_suggestion() -> None:
    assert check("channels:\n  ris:\n    source: {type: ftp}\n") == [
        "channels.yaml:3:20: 'type' must be one of: mllp_listener, file_reader (got 'ftp')"
    ]


def test_missing_union_tag_is_a_missing_field_with_choices() -> None:
    assert check("channels:\n  ris:\n    source:\n      port: 2575\n") == [
        "channels.yaml:3:5: missing required field 'type' (one of: mllp_listener, file_reader)"
    ]


def test_wrong_scalar_type_names_the_field_and_the_value() -> None:
    assert check("""\
        channels:
          ris:
            source:
              type: mllp_listener
              port: abc
        """) == ["channels.yaml:5:13: port: Input should be a valid integer, got 'abc'"]


def test_constraint_and_literal_errors_keep_pydantic_wording() -> None:
    assert check("""\
        channels:
          ris:
            source: {type: file_reader, path: /in}
            destinations:
              - {name: a, type: mllp_sendr, host: h, port: 1.5}
        """) == [
        "channels.yaml:5:25: type: Input should be 'mllp_sender', got 'mllp_sendr', "
        "did you mean 'mllp_sender'?",
        "channels.yaml:5:52: port: Input should be a valid integer, got a number with a "
        "fractional part",
    ]


def test_number_in_a_string_field_suggests_quotes() -> None:
    assert check("channels:\n  ris:\n    source: {type: file_reader, path: 2024}\n") == [
        "channels.yaml:3:39: path: Input should be a valid string, got 2024 "
        "(put the value in quotes)"
    ]


def test_scalar_where_a_mapping_belongs() -> None:
    assert check("""\
        channels:
          ris:
            source: mllp_listener
          lab:
            source:
          pacs: 42
        """) == [
        "channels.yaml:3:13: source: expected a mapping, got 'mllp_listener'",
        "channels.yaml:5:5: source: expected a mapping, got an empty value",
        "channels.yaml:6:9: pacs: expected a mapping, got 42",
    ]


def test_list_item_errors_are_labelled_with_their_index() -> None:
    assert check("""\
        channels:
          ris:
            source: {type: file_reader, path: /in}
            destinations:
              - just-a-name
        """) == ["channels.yaml:5:9: destinations[0]: expected a mapping, got 'just-a-name'"]


def test_mapping_where_a_list_belongs() -> None:
    assert check("""\
        channels:
          ris:
            source: {type: file_reader, path: /in}
            destinations: {name: a}
        """) == ["channels.yaml:4:19: destinations: expected a list, got a mapping"]


def test_empty_file_says_so() -> None:
    assert check("# nothing yet\n") == ["channels.yaml:1:1: the file is empty"]


def test_list_at_top_level() -> None:
    assert check("- a\n") == ["channels.yaml:1:1: expected a mapping, got a list"]


def test_nested_error_inside_a_merged_anchor_points_into_the_anchor() -> None:
    assert check("""\
        defaults: &retry
          max_attempts: lots
        channels:
          ris:
            source: {type: file_reader, path: /in}
            destinations:
              - name: pacs
                type: mllp_sender
                host: h
                port: 1
                retry: *retry
        """, model=_WithDefaults) == [
        "channels.yaml:2:17: max_attempts: Input should be a valid integer, got 'lots'"
    ]


class _WithDefaults(Root):
    defaults: Retry = Retry()


def test_several_problems_are_reported_at_once_in_line_order() -> None:
    assert check("""\
        channels:
          ris:
            source:
              type: mllp_listener
              prot: 2575
            destinations:
              - name: pacs
                type: mllp_sender
                host: pacs.local
                port: dicom
                retry:
                  max_attempt: 3
          lab:
            source:
              type: file_readr
        """) == [
        "channels.yaml:3:5: missing required field 'port'",
        "channels.yaml:5:7: unknown field 'prot' (did you mean 'port'?)",
        "channels.yaml:10:15: port: Input should be a valid integer, got 'dicom'",
        "channels.yaml:12:11: unknown field 'max_attempt' (did you mean 'max_attempts'?)",
        "channels.yaml:15:13: 'type' must be one of: mllp_listener, file_reader "
        "(got 'file_readr', did you mean 'file_reader'?)",
    ]


def test_alias_field_is_suggested_and_located_by_alias() -> None:
    assert check("frm: 1\nend: 2\n", model=Window) == [
        "channels.yaml:1:1: missing required field 'from'",
        "channels.yaml:1:1: unknown field 'frm' (did you mean 'from'?)",
    ]


def test_model_validator_message_drops_the_value_error_prefix() -> None:
    assert check("from: 5\nend: 2\n", model=Window) == [
        "channels.yaml:1:1: end must not be before from"
    ]


def test_plain_union_member_names_are_dropped_from_the_location() -> None:
    assert check("from: 1\nend: 2\ntimeout: {max_attempts: x}\n", model=Window) == [
        "channels.yaml:3:10: timeout: Input should be a valid integer",
        "channels.yaml:3:25: max_attempts: Input should be a valid integer, got 'x'",
    ]


def test_dict_key_errors_point_at_the_key() -> None:
    assert check("from: 1\nend: 2\nweights:\n  heavy: 1.0\n", model=Window) == [
        "channels.yaml:4:3: key 'heavy': Input should be a valid integer"
    ]


def test_locate_strips_tags_and_member_names_and_finds_the_model() -> None:
    data = {"channels": {"ris": {"source": {"type": "mllp_listener", "port": "x"}}}}
    found = locate(("channels", "ris", "source", "mllp_listener", "port"), data, Root)
    assert found.path == ("channels", "ris", "source", "port")
    assert found.node == "x"
    assert found.type is int
    parent = locate(("channels", "ris", "source", "mllp_listener"), data, Root)
    assert parent.type is MLLPListenerConfig
    union = locate(("channels", "ris", "source"), data, Root)
    assert union.discriminator == "type"


def test_locate_without_a_model_follows_the_data() -> None:
    data = {"a": [{"b": 1}]}
    assert locate(("a", 0, "SomeModel", "b"), data).path == ("a", 0, "b")
    assert locate(("a", 0, "missing"), data).path == ("a", 0)


def test_problems_from_exception_without_a_model_suggests_from_siblings() -> None:
    text = "channels:\n  ris:\n    source: {type: file_reader, path: /in}\n    sourc: 1\n"
    loaded = load_yaml(text, "channels.yaml")
    with pytest.raises(ValidationError) as info:
        Root.model_validate(loaded.data)
    problems = problems_from_exception(info.value, loaded, "channels.yaml")
    assert [str(p) for p in problems] == [
        "channels.yaml:4:5: unknown field 'sourc' (did you mean 'source'?)"
    ]

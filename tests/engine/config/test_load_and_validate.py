"""load_and_validate: load -> interpolate -> validate, with every problem of every stage."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.config.problems import ConfigError
from engine.config.validate import load_and_validate
from tests.engine.config.sample_models import Root

Write = Callable[[str], str]


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Write:
    """Write a dedented channels.yaml in a temporary working directory; return its name."""
    monkeypatch.chdir(tmp_path)

    def _write(text: str) -> str:
        Path("channels.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
        return "channels.yaml"

    return _write


def test_valid_file_with_environment_gives_the_model(write: Write) -> None:
    path = write("""\
        channels:
          ris:
            source:
              type: mllp_listener
              port: ${RIS_PORT:-2575}
            destinations:
              - name: pacs
                type: mllp_sender
                host: ${PACS_HOST}
                port: ${PACS_PORT:-104}
        """)
    instance, problems = load_and_validate(path, Root, env={"PACS_HOST": "10.1.2.3"})
    assert problems == []
    assert isinstance(instance, Root)
    channel = instance.channels["ris"]
    assert channel.source.port == 2575  # type: ignore[union-attr]
    assert (channel.destinations[0].host, channel.destinations[0].port) == ("10.1.2.3", 104)


def test_environment_defaults_to_the_process_environment(
    write: Write, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RADBRIDGE_TEST_PORT", "3001")
    path = write("channels:\n  a:\n    source:\n      type: mllp_listener\n"
                 "      port: ${RADBRIDGE_TEST_PORT}\n")
    instance, problems = load_and_validate(path, Root)
    assert problems == [] and instance is not None
    assert instance.channels["a"].source.port == 3001  # type: ignore[union-attr]


def test_syntax_error_stops_before_interpolation_and_validation(write: Write) -> None:
    path = write("channels:\n  ris: [\n  port: ${X}\n")
    instance, problems = load_and_validate(path, Root, env={})
    assert instance is None
    assert len(problems) == 1
    assert problems[0].message.startswith("YAML syntax error:")


def test_missing_file_is_one_problem(tmp_path: Path) -> None:
    instance, problems = load_and_validate(str(tmp_path / "absent.yaml"), Root, env={})
    assert instance is None
    assert [p.message for p in problems] == ["cannot read file: No such file or directory"]


def test_all_stages_report_together_in_line_order(write: Write) -> None:
    path = write("""\
        channels:
          ris_orders:
            source:
              type: mllp_listener
              port: 2575
              port: 2576
            destinations:
              - name: pacs
                type: mllp_sender
                host: ${PACS_HOST}
                port: dicom
          lab:
            source:
              type: file_readr
        """)
    instance, problems = load_and_validate(path, Root, env={})
    assert instance is None
    assert str(ConfigError(problems)) == textwrap.dedent("""\
        channels.yaml:6:7: duplicate key 'port' (first defined at line 5)
        channels.yaml:10:15: environment variable PACS_HOST is not set (use ${PACS_HOST:-default} to give a default)
        channels.yaml:11:15: port: Input should be a valid integer, got 'dicom'
        channels.yaml:14:13: 'type' must be one of: mllp_listener, file_reader (got 'file_readr', did you mean 'file_reader'?)""")  # noqa: E501


def test_unset_variable_hides_the_validation_error_it_causes(write: Write) -> None:
    path = write("channels:\n  a:\n    source:\n      type: mllp_listener\n      port: ${PORT}\n")
    instance, problems = load_and_validate(path, Root, env={})
    assert instance is None
    assert [str(p) for p in problems] == [
        "channels.yaml:5:13: environment variable PORT is not set "
        "(use ${PORT:-default} to give a default)"
    ]


def test_every_problem_kind_at_once(write: Write) -> None:
    path = write("""\
        channels:
          ris:
            source:
              type: mllp_listener
              prot: 2575
              port: ${RIS_PORT}
            destinations:
              - name: pacs
                type: mllp_sender
                port: abc
                retry: {max_attempts: 3, max_attempts: 4}
        """)
    _, problems = load_and_validate(path, Root, env={})
    assert [str(p) for p in problems] == [
        "channels.yaml:5:7: unknown field 'prot' (did you mean 'port'?)",
        "channels.yaml:6:13: environment variable RIS_PORT is not set "
        "(use ${RIS_PORT:-default} to give a default)",
        "channels.yaml:8:9: missing required field 'host'",
        "channels.yaml:10:15: port: Input should be a valid integer, got 'abc'",
        "channels.yaml:11:34: duplicate key 'max_attempts' (first defined at line 11)",
    ]


def test_number_from_the_environment_in_a_string_field_suggests_quoting(write: Write) -> None:
    path = write("channels:\n  a:\n    source:\n      type: file_reader\n      path: ${DIR}\n")
    _, problems = load_and_validate(path, Root, env={"DIR": "2024"})
    assert [str(p) for p in problems] == [
        "channels.yaml:5:13: path: Input should be a valid string, got 2024 "
        '(YAML read ${DIR} as 2024; quote it: "${DIR}")'
    ]
    path = write('channels:\n  a:\n    source:\n      type: file_reader\n      path: "${DIR}"\n')
    instance, problems = load_and_validate(path, Root, env={"DIR": "2024"})
    assert problems == [] and instance is not None


def test_loader_problem_makes_an_otherwise_valid_file_invalid(write: Write) -> None:
    path = write("channels:\n  a:\n    source: {type: file_reader, path: /a, path: /b}\n")
    instance, problems = load_and_validate(path, Root, env={})
    assert instance is None
    assert [p.message for p in problems] == ["duplicate key 'path' (first defined at line 3)"]


def test_anchors_and_merge_keys_validate_with_positions(write: Write) -> None:
    path = write("""\
        x-listener: &listener
          type: mllp_listener
          host: 0.0.0.0
        channels:
          ris:
            source:
              <<: *listener
              port: 2575
          lab:
            source:
              <<: *listener
              port: 2576
              hots: other
        """)
    instance, problems = load_and_validate(path, _Root, env={})
    assert [str(p) for p in problems] == [
        "channels.yaml:13:7: unknown field 'hots' (did you mean 'host'?)"
    ]
    path = write(Path("channels.yaml").read_text().replace("      hots: other\n", ""))
    instance, problems = load_and_validate(path, _Root, env={})
    assert problems == [] and isinstance(instance, _Root)
    assert instance.channels["lab"].source.port == 2576  # type: ignore[union-attr]


class _Root(Root):
    model_config = Root.model_config | {"extra": "ignore"}

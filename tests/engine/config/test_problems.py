"""ConfigProblem formatting and ordering, ConfigError rendering."""

from __future__ import annotations

import dataclasses

import pytest

from engine.config.problems import (
    ConfigError,
    ConfigProblem,
    format_problems,
    has_errors,
    sort_problems,
)


def test_error_prints_as_file_line_col_message() -> None:
    problem = ConfigProblem("channels.yaml", 12, 7, "unknown field 'prot'")
    assert str(problem) == "channels.yaml:12:7: unknown field 'prot'"
    assert problem.severity == "error"
    assert problem.is_error


def test_warning_prints_with_warning_prefix() -> None:
    problem = ConfigProblem("channels.yaml", 3, 1, "port 0 picks a random port", "warning")
    assert str(problem) == "channels.yaml:3:1: warning: port 0 picks a random port"
    assert not problem.is_error


def test_problems_are_frozen() -> None:
    problem = ConfigProblem("a.yaml", 1, 1, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.line = 2  # type: ignore[misc]


def test_problems_sort_by_file_then_line_then_column() -> None:
    problems = [
        ConfigProblem("b.yaml", 1, 1, "b"),
        ConfigProblem("a.yaml", 10, 1, "late"),
        ConfigProblem("a.yaml", 2, 9, "right"),
        ConfigProblem("a.yaml", 2, 3, "left"),
    ]
    assert [p.message for p in sorted(problems)] == ["left", "right", "late", "b"]


def test_sort_problems_removes_duplicates() -> None:
    twice = ConfigProblem("a.yaml", 1, 1, "same")
    assert sort_problems([twice, ConfigProblem("a.yaml", 1, 1, "same")]) == [twice]


def test_has_errors_ignores_warnings() -> None:
    assert not has_errors([ConfigProblem("a", 1, 1, "w", "warning")])
    assert has_errors([ConfigProblem("a", 1, 1, "w", "warning"), ConfigProblem("a", 1, 1, "e")])
    assert not has_errors([])


def test_config_error_lists_every_problem_one_per_line_in_order() -> None:
    error = ConfigError([
        ConfigProblem("channels.yaml", 9, 5, "missing required field 'host'"),
        ConfigProblem("channels.yaml", 4, 7, "unknown field 'prot' (did you mean 'port'?)"),
    ])
    assert str(error) == (
        "channels.yaml:4:7: unknown field 'prot' (did you mean 'port'?)\n"
        "channels.yaml:9:5: missing required field 'host'"
    )
    assert [p.line for p in error.problems] == [4, 9]
    assert format_problems(error.problems) == str(error)


def test_config_error_is_raisable_and_catchable_as_exception() -> None:
    with pytest.raises(ConfigError, match=r"a\.yaml:1:2: bad"):
        raise ConfigError([ConfigProblem("a.yaml", 1, 2, "bad")])

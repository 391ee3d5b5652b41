"""${VAR} interpolation: substitution, re-typing, defaults, escapes and problems."""

from __future__ import annotations

import math
import textwrap
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine.config.interpolate import (
    VariableReference,
    interpolate,
    interpolate_detailed,
    referenced_variables,
)
from engine.config.loader import load_yaml, read_plain_scalar


def run(text: str, **env: str) -> tuple[Any, list[str]]:
    data, problems = interpolate(load_yaml(textwrap.dedent(text), "channels.yaml"), env)
    return data, [str(p) for p in sorted(problems)]


def test_whole_plain_reference_is_retyped_by_yaml_rules() -> None:
    data, problems = run("""\
        port: ${PORT:-2575}
        enabled: ${ENABLED:-true}
        ratio: ${RATIO}
        nothing: ${NOTHING:-null}
        """, RATIO="0.5")
    assert problems == []
    assert data == {"port": 2575, "enabled": True, "ratio": 0.5, "nothing": None}


def test_quoted_reference_stays_a_string() -> None:
    data, _ = run("""\
        a: "${PORT:-2575}"
        b: '${PORT:-2575}'
        """)
    assert data == {"a": "2575", "b": "2575"}


def test_reference_inside_text_is_substituted_into_the_string() -> None:
    data, _ = run("host: db-${SITE}.${DOMAIN:-local}:${PORT:-5432}\n", SITE="eu")
    assert data == {"host": "db-eu.local:5432"}


def test_empty_default_gives_empty_string_not_null() -> None:
    data, problems = run("tls_cert: ${CERT:-}\n")
    assert data == {"tls_cert": ""} and problems == []


def test_default_applies_when_variable_is_set_but_empty() -> None:
    data, _ = run("port: ${PORT:-2575}\n", PORT="")
    assert data == {"port": 2575}


def test_set_variable_wins_over_default() -> None:
    data, _ = run("port: ${PORT:-2575}\n", PORT="3000")
    assert data == {"port": 3000}


def test_set_but_empty_variable_without_default_is_empty_string() -> None:
    data, problems = run("note: ${NOTE}\n", NOTE="")
    assert data == {"note": ""} and problems == []


def test_missing_variable_is_reported_at_the_scalar() -> None:
    data, problems = run("""\
        source:
          port: ${RADBRIDGE_PORT}
        """)
    assert problems == [
        "channels.yaml:2:9: environment variable RADBRIDGE_PORT is not set "
        "(use ${RADBRIDGE_PORT:-default} to give a default)"
    ]
    assert data == {"source": {"port": ""}}


def test_missing_variable_inside_text_points_at_its_reference() -> None:
    _, problems = run('url: "https://${HOST:-x}/${API_PATH}"\n')
    assert [p.split(": environment")[0] for p in problems] == ["channels.yaml:1:26"]


def test_each_missing_reference_is_reported() -> None:
    _, problems = run("""\
        a: ${ONE}-${TWO}
        b: >
          folded ${THREE}
          text
        """)
    assert [p.split(" (use")[0] for p in problems] == [
        "channels.yaml:1:4: environment variable ONE is not set",
        "channels.yaml:1:11: environment variable TWO is not set",
        "channels.yaml:3:10: environment variable THREE is not set",
    ]


def test_reference_in_an_aliased_value_is_reported_once() -> None:
    _, problems = run("""\
        base: &b {host: "${HOST}"}
        x: *b
        y: *b
        """)
    assert len(problems) == 1 and problems[0].startswith("channels.yaml:1:18:")


def test_double_dollar_escapes_a_literal_reference() -> None:
    data, problems = run("""\
        template: "$${NOT_A_VAR} and ${X:-y}"
        plain: $${X}
        """)
    assert problems == []
    assert data == {"template": "${NOT_A_VAR} and y", "plain": "${X}"}


def test_escape_before_same_reference_keeps_positions_right() -> None:
    _, problems = run("a: $${X} ${X}\n")
    assert problems[0].startswith("channels.yaml:1:10:")


def test_other_dollars_are_kept() -> None:
    data, _ = run("price: $5 and $$ and $HOME\n")
    assert data == {"price": "$5 and $$ and $HOME"}


def test_malformed_references_are_reported() -> None:
    data, problems = run("""\
        a: ${PORT-2575}
        b: x ${1ST}
        c: ${NESTED:-${INNER}}
        d: ${OPEN
        """)
    assert problems == [
        "channels.yaml:1:4: invalid variable reference '${PORT-2575}': expected ${NAME} or "
        "${NAME:-default} (write $${ for a literal ${)",
        "channels.yaml:2:6: invalid variable reference '${1ST}': expected ${NAME} or "
        "${NAME:-default} (write $${ for a literal ${)",
        "channels.yaml:3:4: invalid variable reference '${NESTED:-${INNER}': expected ${NAME} or "
        "${NAME:-default} (write $${ for a literal ${)",
        "channels.yaml:4:4: unterminated variable reference '${OPEN' (missing '}')",
    ]
    assert data["a"] == "${PORT-2575}"


def test_keys_are_not_interpolated() -> None:
    data, problems = run("${KEY}: 1\n")
    assert data == {"${KEY}": 1} and problems == []


def test_environment_cannot_inject_yaml_structure() -> None:
    data, _ = run("a: ${V}\nb: ${W}\n", V="[1, 2]", W="x: y")
    assert data == {"a": "[1, 2]", "b": "x: y"}


def test_loaded_data_is_not_modified() -> None:
    loaded = load_yaml("a: ${A:-1}\nb:\n  - ${B:-2}\n", "f.yaml")
    data, _ = interpolate(loaded, {})
    assert data == {"a": 1, "b": [2]}
    assert loaded.data == {"a": "${A:-1}", "b": ["${B:-2}"]}


def test_non_string_values_pass_through() -> None:
    data, _ = run("a: 1\nb: [true, null, 2.5]\nc: {d: plain}\n")
    assert data == {"a": 1, "b": [True, None, 2.5], "c": {"d": "plain"}}


def test_detailed_result_tells_unresolved_and_retyped_paths() -> None:
    loaded = load_yaml("a: ${A}\nb:\n  - ${B:-2}\nc: x${C:-1}\nd: ${D:-z}\n", "f.yaml")
    result = interpolate_detailed(loaded, {})
    assert result.unresolved == {("a",)}
    assert result.retyped == {("b", 0): "${B:-2}"}
    assert result.data == {"a": "", "b": [2], "c": "x1", "d": "z"}


def test_referenced_variables_lists_names_defaults_and_positions() -> None:
    loaded = load_yaml(textwrap.dedent("""\
        port: ${PORT:-2575}
        host: "${HOST}"
        url: http://${HOST}:${PORT:-1}/$${LITERAL}
        bad: ${BAD-1}
        """), "f.yaml")
    assert referenced_variables(loaded) == [
        VariableReference("PORT", True, 1, 7),
        VariableReference("HOST", False, 2, 8),
        VariableReference("HOST", False, 3, 13),
        VariableReference("PORT", True, 3, 21),
    ]
    name, has_default, line, col = referenced_variables(loaded)[0]
    assert (name, has_default, line, col) == ("PORT", True, 1, 7)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30))
def test_quoted_reference_yields_the_exact_environment_value(value: str) -> None:
    data, problems = interpolate(load_yaml('x: "${V}"\n', "f.yaml"), {"V": value})
    assert problems == [] and data == {"x": value}


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
               max_size=30))
def test_plain_reference_yields_what_yaml_reads_for_the_value(value: str) -> None:
    data, problems = interpolate(load_yaml("x: ${V}\n", "f.yaml"), {"V": value})
    assert problems == []
    expected = read_plain_scalar(value)
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(data["x"])
    else:
        assert data == {"x": expected}

"""The condition language: tokenizer, parser and compiled closures (never eval)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.hl7 import HL7Message
from transforms.errors import ExpressionError
from transforms.expr_compile import compile_expression
from transforms.expr_lexer import tokenize
from transforms.hl7_values import chars_of, scope_of
from transforms.refs import RefCompiler, RefScope
from transforms.runtime import Run
from transforms.tables import LookupTable

from .conftest import ORM


def _run(message: str = ORM, **variables: Any) -> Run:
    run = Run("test")
    msg = HL7Message.parse(message)
    run.msg, run.delimiters, run.chars = msg, msg.delimiters, chars_of(msg.delimiters)
    run.scope, run.fields = scope_of(msg.segments())
    run.out = run.target = {"AccessionNumber": "ACC0001"}
    run.vars = dict(variables)
    return run


def _compile(text: str, variables: frozenset[str] = frozenset()) -> Any:
    table = LookupTable("modality", "inline", "from", "to", ("from", "to"),
                        {"CT": {"from": "CT", "to": "CT"}})
    scope = RefScope("hl7", "record", {"site": "GENHOSP"}, variables, {"modality": table})
    return compile_expression(text, RefCompiler(scope, text))


def evaluate(text: str, **variables: Any) -> Any:
    return _compile(text, frozenset(variables))(_run(**variables))


@pytest.mark.parametrize(("text", "expected"), [
    ('MSH-9.1 == "ORM"', True),
    ('MSH-9.1 != "ORM"', False),
    ('MSH-9.1 in ("ORM", "OMI")', True),
    ('MSH-9.1 not in ("ORM", "OMI")', False),
    ('MSH-9.1 in ["ADT"]', False),
    ("empty(IPC-1.1) and present(OBR-18)", True),
    ("empty(OBR-18) or empty(PID-3.1)", False),
    ("not empty(OBR-18)", True),
    ("not (empty(OBR-18) or empty(PID-3))", True),
    ("len(OBR-18) == 7", True),
    ("len(OBR-18) > 16", False),
    ("len(OBR-18) >= 7 and len(OBR-18) <= 7", True),
    ('upper(PID-5.2) == "ALICE"', True),
    ('lower(PID-5.2) == "alice"', True),
    ("OBR-18 matches '^ACC[0-9]+$'", True),
    ('OBR-18 matches "^X"', False),
    ('"GENHOSP" in PID-3', True),
    ("PID-3[2].1 == ''", True),
    ("OBR[2]-4 == ''", True),
    ("$site == 'GENHOSP'", True),
    ('out.AccessionNumber == OBR-18', True),
    ("known(modality, OBR-24)", True),
    ("known(modality, 'RX')", False),
    ("PID-7 < 20000101", True),
    ("PID-8 == 1", False),
    ("true and not false", True),
    ("OBR-18", "ACC0001"),
    ("3.5", 3.5),
])
def test_expression_evaluates(text: str, expected: Any) -> None:
    assert evaluate(text) == expected


def test_variables_read_let_values() -> None:
    assert evaluate('$code == "CT"', code="CT") is True


def test_every_repetition_is_a_list() -> None:
    message = ORM.replace("PID|1||PAT10001^^^GENHOSP^MR|", "PID|1||A^^^X~B^^^Y~C^^^Z|")
    fn = _compile("PID-3[*].1")
    assert fn(_run(message)) == ["A", "B", "C"]
    assert _compile('"B" in PID-3[*].1')(_run(message)) is True


def test_string_escapes_keep_regex_backslashes() -> None:
    tokens = tokenize(r"""'it\'s' "a\"b" "^\d+\.\d$" 'c:\\x'""")
    assert [t.value for t in tokens[:-1]] == ["it's", 'a"b', r"^\d+\.\d$", "c:\\x"]


@pytest.mark.parametrize(("text", "message", "position"), [
    ('MSH-9.1 = "ORM"', "compare with '=='", 8),
    ("empty(PID-3) && present(PID-5)", "use 'and' / 'or'", 13),
    ('MSH-9.1 not in ("ORM", "OMI"', "expected ',' or ')'", 28),
    ("emptty(PID-3)", "unknown function 'emptty' (did you mean 'empty'?)", 0),
    ("empty(PID-3, PID-5)", "takes 1 argument, got 2", 0),
    ("pid-3 == 'x'", "invalid HL7 path", 0),
    ("PID-0 == 'x'", "start at 1", 0),
    ("'open", "unterminated string", 0),
    ("OBR-18 matches OBR-19", "needs a quoted regular expression", 15),
    ("OBR-18 matches '(['", "invalid regular expression", 15),
    ("$nope", "unknown variable $nope", 0),
    ("PID == 'x'", "an HL7 path needs a field number", 0),
    ("OBR-18 OBR-19", "after a complete expression", 7),
    ("", "empty expression", 0),
    ("and", "needs a value before it", 0),
    ("(" * 40 + "1" + ")" * 40, "nested too deeply", 32),
    ("known(nope, PID-3)", "unknown table 'nope'", 6),
    ("item.X", "only defined inside foreach", 0),
])
def test_bad_expression_reports_message_and_position(text: str, message: str,
                                                      position: int) -> None:
    with pytest.raises(ExpressionError) as info:
        _compile(text)
    assert message in info.value.message
    assert info.value.position == position


_PIECES = [*"PIDOBRMSH-0123456789.[]()$'\" =!<>,*", "and", "or", "not", "in", "matches",
           "empty(", "len(", "known(", "PID-3", "OBR-18", "OBR[2]-4.1", '"x"', "$site", "out.X",
           " "]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=30).map("".join) | st.text(max_size=40))
def test_parser_never_crashes_and_errors_carry_a_position(text: str) -> None:
    try:
        fn = _compile(text)
    except ExpressionError as exc:
        assert 0 <= exc.position <= len(text)
        return
    fn(_run())  # whatever compiles also runs without raising

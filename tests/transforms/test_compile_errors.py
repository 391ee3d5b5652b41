"""Loading a mapping reports every problem at once, at file:line:col, naming the step."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.config.problems import ConfigError
from transforms import LookupMissRegistry, MappingError, load_mapping
from transforms.errors import TransformError


def problems_of(path: Path, **params: object) -> list[str]:
    with pytest.raises(MappingError) as info:
        load_mapping(path, params=params or None, misses=LookupMissRegistry())
    return [str(p) for p in info.value.problems]


def test_every_problem_is_listed_with_step_and_position(write: Callable[..., Path]) -> None:
    path = write("""\
        mapping: m
        input: hl7
        outptu: record
        steps:
          - filter: "not an order"
            when: 'MSH-9.1 not in ("ORM", "OMI"'
          - set: AccessionNumber
            from: [IPC-1.1, OBR-18]
            ops: [uper]
          - sett: X
          - set: Y
            from: $nothing
          - set: Z
            from: PID-3
            when: "emptty(PID-3)"
        """)
    f = str(path)
    assert problems_of(path) == [
        f"{f}:1:1: output is missing; choose one of record, hl7",
        f"{f}:3:1: unknown key 'outptu' (did you mean 'output'?)",
        f"{f}:6:40: step 1 (filter not an order): expected ',' or ')', found the end of the "
        "expression (the '(' is at column 16) in 'MSH-9.1 not in (\"ORM\", \"OMI\"'",
        f"{f}:9:11: step 2 (set AccessionNumber): unknown op 'uper' (did you mean 'upper'?)",
        f"{f}:10:5: step 3: unknown step kind 'sett' (did you mean 'set'?); known: set, let, "
        "copy, foreach, filter, reject, route",
        f"{f}:12:11: step 4 (set Y): unknown variable $nothing: define it with an earlier 'let' "
        "step or under 'params' in '$nothing'",
        f"{f}:15:12: step 5 (set Z): unknown function 'emptty' (did you mean 'empty'?); known: "
        "empty, present, upper, lower, trim, len, known in 'emptty(PID-3)'",
    ]


def test_mapping_error_is_a_config_error_and_a_transform_error(write: Callable[..., Path]) -> None:
    with pytest.raises(MappingError) as info:
        load_mapping(write("mapping: m\n"))
    assert isinstance(info.value, ConfigError) and isinstance(info.value, TransformError)


@pytest.mark.parametrize(("body", "message"), [
    ("steps: []", "'steps' must be a non-empty list"),
    ("steps:\n  - set: X", "needs a source: 'from'"),
    ("steps:\n  - set: X\n    from: A\n    value: B", "give exactly one of 'from', 'value'"),
    ("steps:\n  - set: X\n    value: yes", "YAML reads this as true; quote it"),
    ("steps:\n  - set: X\n    value: b\n    frm: A", "unknown key 'frm' (did you mean 'from'?)"),
    ("steps:\n  - set: X\n    value: b\n    max_length: 0", "max_length must be a whole number"),
    ("steps:\n  - set: X\n    value: b\n    on_overflow: cut", "on_overflow must be one of"),
    ("steps:\n  - set: X\n    value: b\n    required: 3", "required is true, false or the"),
    ("steps:\n  - set: 'A..B'\n    value: b", "invalid record path 'A..B'"),
    ("steps:\n  - set: X[#].Y\n    value: b", "invalid record path"),
    ("steps:\n  - let: 9x\n    value: b", "let needs a variable name"),
    ("steps:\n  - filter: ''", "filter needs the reason"),
    ("steps:\n  - reject: x\n    error_code: 9", "error_code is an HL7 table 0357 code"),
    ("steps:\n  - reject: no", "YAML reads this as false; quote it"),
    ("steps:\n  - reject: x\n    location: OBR18", "invalid HL7 path 'OBR18'"),
    ("steps:\n  - route: ['a b']", "route needs destination names"),
    ("steps:\n  - set: X\n    value: b\n    copy: Y", "one step kind per step, found set and copy"),
    ("steps:\n  - copy: PID", "copy keeps structure, so input and output must be of the same"),
    ("steps:\n  - foreach: {group: ORC, members: [obr]}\n    steps: [{set: X, value: y}]",
     "group and members must be segment names"),
    ("steps:\n  - foreach: {group: ORC, members: [OBR], each: IPC}\n"
     "    steps: [{set: X, value: y}]", "each must be one of the members"),
    ("steps:\n  - foreach: {segment: OBX}\n    steps: []", "'steps' must be a non-empty list"),
    ("steps:\n  - foreach: {items: X}\n    steps: [{set: X, value: y}]",
     "unknown key 'items'"),
    ("template: 'MSH|^~\\\\&|A'\nsteps:\n  - set: X\n    value: b",
     "template is only used with output: hl7"),
    ("params: {p: {default: a, choices: [b]}}\nsteps:\n  - set: X\n    value: $p",
     "default of 'p' is not one of its choices"),
    ("steps:\n  - set: X\n    value: $q", "unknown parameter $q"),
    ("length_policy: chop\nsteps:\n  - set: X\n    value: b", "length_policy must be one of"),
    ("hl7_versions: [2.5]\nsteps:\n  - set: X\n    value: b", ""),
    ("hl7_versions: ['9.9']\nsteps:\n  - set: X\n    value: b", "unknown HL7 version '9.9'"),
])
def test_step_problems(write: Callable[..., Path], body: str, message: str) -> None:
    path = write("mapping: m\ninput: hl7\noutput: record\n" + body + "\n")
    if not message:
        load_mapping(path)  # loads cleanly
        return
    found = problems_of(path)
    assert any(message in p for p in found), found


def test_hl7_output_needs_a_valid_template(write: Callable[..., Path]) -> None:
    found = problems_of(write("mapping: m\ninput: hl7\noutput: hl7\ntemplate: 'PID|1'\n"
                              "steps:\n  - set: PID-3\n    value: x\n"))
    assert any("template is not valid HL7" in p for p in found)
    found = problems_of(write("mapping: m\ninput: hl7\noutput: hl7\nsteps:\n  - set: PID-3\n"
                              "    value: x\n"))
    assert any("output: hl7 needs a template" in p for p in found)


def test_hash_occurrence_only_inside_foreach(write: Callable[..., Path]) -> None:
    found = problems_of(write("mapping: m\ninput: hl7\noutput: hl7\ntemplate: |\n"
                              "  MSH|^~\\&|A|B|C|D|||ORM^O01||P|2.3.1\nsteps:\n"
                              "  - set: OBR[#]-4\n    value: x\n"))
    assert any("[#] (the current item) is only valid inside foreach" in p for p in found)


def test_params_given_for_a_mapping_must_be_declared(write: Callable[..., Path]) -> None:
    path = write("mapping: m\ninput: hl7\noutput: record\nparams: {site: A}\n"
                 "steps:\n  - set: X\n    value: $site\n")
    assert any("parameter 'sitee' given for this mapping is not declared under params (did you "
               "mean 'site'?)" in p for p in problems_of(path, sitee="B"))


def test_yaml_syntax_errors_stop_with_a_position(write: Callable[..., Path]) -> None:
    path = write("mapping: m\nsteps:\n  - set: X\n    from: [PID-3\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:5:1: YAML syntax error")


def test_flow_list_with_an_index_needs_quotes(write: Callable[..., Path]) -> None:
    # `[Seq[0].X]` is a YAML nested list: the analyst gets a positioned error, not a crash
    path = write("mapping: m\ninput: record\noutput: record\nsteps:\n  - set: X\n"
                 "    from: [Seq[0].X, Y]\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:6:15: YAML syntax error")
    assert problem.endswith("a path with [n] inside [ , ] needs quotes (\"PID-3[2].1\") or a "
                            "block list (- PID-3[2].1)")

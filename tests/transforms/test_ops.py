"""Ops: each transformation, its arguments, and its compile-time checks."""

from __future__ import annotations

from typing import Any

import pytest

from transforms import ops_data  # noqa: F401 - registers lookup, datetime, derive_uid
from transforms.misses import LookupMissRegistry
from transforms.ops import OpContext, OpFailed, OpSpecError, compile_op, op_names
from transforms.runtime import Run
from transforms.tables import LookupTable


def _ctx() -> OpContext:
    table = LookupTable("modality", "inline", "from", "to", ("from", "to", "station"),
                        {"CT": {"from": "CT", "to": "CT", "station": "CT1"},
                         "RX": {"from": "RX", "to": "CR", "station": "CR1"}})
    return OpContext("m", {"modality": table}, LookupMissRegistry(), declared={"modality"})


def apply(spec: Any, value: Any, ctx: OpContext | None = None, run: Run | None = None) -> Any:
    return compile_op(spec, ctx or _ctx())(value, run or Run("m"))


@pytest.mark.parametrize(("spec", "value", "expected"), [
    ("upper", "ct head", "CT HEAD"),
    ("lower", "CT", "ct"),
    ("trim", "  CT ", "CT"),
    ({"trim": "0"}, "00120", "12"),
    ({"default": "OT"}, "", "OT"),
    ({"default": "OT"}, "CT", "CT"),
    ({"prefix": "ACC-"}, "1", "ACC-1"),
    ({"prefix": "ACC-"}, "", ""),
    ({"suffix": "^^DCM"}, "MR", "MR^^DCM"),
    ({"truncate": 3}, "ABCDEF", "ABC"),
    ({"replace": {"pattern": "[^0-9]", "with": ""}}, "A1-2B3", "123"),
    ({"replace": {"pattern": "(\\w+) (\\w+)", "with": "\\2 \\1"}}, "JOHN DOE", "DOE JOHN"),
    ({"replace": {"pattern": "-", "with": "", "count": 1}}, "a-b-c", "ab-c"),
    ({"split": ","}, "a,b,c", ["a", "b", "c"]),
    ({"split": ","}, "", []),
    ({"split": {"separator": "^", "index": 1}}, "DOE^JOHN", "JOHN"),
    ({"split": {"separator": "^", "index": 5}}, "DOE^JOHN", ""),
    ({"join": "\\"}, ["CT1", "", "CT2"], "CT1\\CT2"),
    ("first", ["a", "b"], "a"),
    ({"component": 2}, "DOE^JOHN^Q", "JOHN"),
    ({"component": 4}, "DOE^JOHN", ""),
    ({"components": 2}, "DOE^JOHN^Q", "DOE^JOHN"),
    ({"components": [1, 2, 3, 5, 4]}, "DOE^JOHN^Q^JR^DR^^L", "DOE^JOHN^Q^DR^JR"),
    ({"components": [1, 2, 3, 5, 4]}, "DOE^JOHN", "DOE^JOHN"),
    ("upper", ["ct", "mr"], ["CT", "MR"]),
    ({"lookup": "modality"}, "RX", "CR"),
    ({"lookup": "modality", "column": "station"}, "CT", "CT1"),
    ({"lookup": "modality"}, "", ""),
    ({"lookup": "modality"}, ["CT", "RX"], ["CT", "CR"]),
    ({"lookup": "modality", "on_miss": "keep"}, "XX", "XX"),
    ({"lookup": "modality", "on_miss": "empty"}, "XX", ""),
    ({"datetime": {"to": "DA"}}, "20261122083000", "20261122"),
    ({"datetime": {"from": "DA", "to": "%d/%m/%Y"}}, "20261122", "22/11/2026"),
    ({"datetime": {"to": "DA", "on_error": "empty"}}, "bad", ""),
    ({"datetime": {"to": "DA", "on_error": "keep"}}, "bad", "bad"),
])
def test_op_transforms_value(spec: Any, value: Any, expected: Any) -> None:
    assert apply(spec, value) == expected


def test_lookup_default_counts_the_miss_and_warns() -> None:
    ctx, run = _ctx(), Run("m")
    assert apply({"lookup": "modality", "default": "OT"}, "XX", ctx, run) == "OT"
    assert apply({"lookup": "modality", "default": "OT"}, "XX", ctx, run) == "OT"
    [miss] = ctx.misses.misses()
    assert (miss.mapping, miss.table, miss.key, miss.count) == ("m", "modality", "XX", 2)
    assert run.warnings == ["lookup miss: no 'XX' in table 'modality'; used the default 'OT'"] * 2


def test_lookup_without_default_fails_with_table_value_not_found() -> None:
    with pytest.raises(OpFailed) as info:
        apply({"lookup": "modality"}, "XX")
    assert info.value.error_code == "103"
    assert info.value.reason == "no entry for 'XX' in table 'modality'"


def test_datetime_on_bad_value_fails_with_data_type_error() -> None:
    with pytest.raises(OpFailed) as info:
        apply({"datetime": {"to": "DA"}}, "2026-11-22")
    assert info.value.error_code == "102"


def test_derive_uid_is_stable_and_a_valid_uid() -> None:
    uid = apply("derive_uid", "ACC0001")
    assert uid == apply("derive_uid", "ACC0001") != apply("derive_uid", "ACC0002")
    assert uid.startswith("2.25.") and len(uid) <= 64 and uid.replace(".", "").isdigit()


@pytest.mark.parametrize(("spec", "message", "key"), [
    ("uper", "unknown op 'uper' (did you mean 'upper'?)", "uper"),
    ({"lookup": "modalty"}, "unknown table 'modalty' (did you mean 'modality'?)", "lookup"),
    ({"lookup": "modality", "column": "nope"}, "has no column 'nope'", "column"),
    ({"lookup": "modality", "on_miss": "drop"}, "on_miss must be one of", "on_miss"),
    ({"lookup": "modality", "defualt": "OT"}, "unknown option 'defualt' (did you mean 'default'?)",
     "defualt"),
    ({"truncate": "16"}, "needs a whole number", "truncate"),
    ({"truncate": 0}, "needs a whole number ≥ 1", "truncate"),
    ({"replace": {"pattern": "(", "with": ""}}, "invalid regular expression", "pattern"),
    ({"replace": {"with": ""}}, "replace needs {pattern", "replace"),
    ({"datetime": {"to": "%Q"}}, "unsupported directive %Q", "to"),
    ({"datetime": {"from": "hl7"}}, "datetime needs 'to'", "datetime"),
    ({"upper": 1}, "takes no argument", "upper"),
    ({"upper": None, "lower": None}, "one op per entry", None),
    (3, "an op is a name", None),
    ({"split": ""}, "separator cannot be empty", "separator"),
])
def test_bad_op_specs_name_the_problem_and_its_key(spec: Any, message: str,
                                                   key: str | None) -> None:
    with pytest.raises(OpSpecError) as info:
        compile_op(spec, _ctx())
    assert message in info.value.message
    assert info.value.key == key


def test_every_documented_op_is_registered() -> None:
    assert set(op_names()) == {"upper", "lower", "trim", "default", "prefix", "suffix",
                               "truncate", "replace", "split", "join", "first", "component",
                               "components", "lookup", "datetime", "derive_uid"}

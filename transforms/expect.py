"""Compare one mapping result with a test case's expectations, field by field.

Expected values: a scalar equals the output's text (numbers and booleans compare as
written in the YAML, so ``+0100`` stays ``+0100``); ``null`` means absent or empty; a
list must equal the output's list item by item; a mapping checks the keys (or relative
paths) it lists in the output's subtree, and only those; a mapping with one of the keys
below is an assertion instead::

    PatientName: {matches: '^TEST'}     # regular expression search
    MSH-10: {present: true}            # non-empty (false: absent or empty)
    PatientName: {contains: ALICE}      # substring (or list item)
    OtherPatientIDsSequence: {length: 2}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from engine.hl7 import HL7Message
from transforms.mapping import MappingResult
from transforms.records import RecordPathError, get_in, parse_record_path
from transforms.runtime import is_empty, text_of
from transforms.testcases import Expectation, MappingTestCase

__all__ = ["ASSERTIONS", "FieldDiff", "compare"]

ASSERTIONS = ("matches", "present", "contains", "length")


@dataclass(frozen=True)
class FieldDiff:
    """One expectation that did not hold, where it is written."""

    file: str
    line: int
    col: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.field}: {self.message}"


def show(value: Any) -> str:
    if value is None:
        return "(absent)"
    return json.dumps(value, ensure_ascii=False)


def compare(case: MappingTestCase, result: MappingResult) -> list[FieldDiff]:
    diffs: list[FieldDiff] = []

    def diff(e: Expectation, message: str) -> None:
        diffs.append(FieldDiff(str(case.file), e.line, e.col, e.field, message))

    status_exp = case.outcome_text or Expectation("status", "", case.line, case.col)
    if result.status != case.outcome:
        why = f" ({result.reason})" if result.reason else ""
        diff(Expectation("status", None, status_exp.line, status_exp.col),
             f"expected {case.outcome}, got {result.status}{why}")
        return diffs
    if case.outcome_text is not None and case.outcome_text.expected not in result.reason:
        diff(case.outcome_text, f"expected a reason containing {show(case.outcome_text.expected)}"
             f", got {show(result.reason)}")
    for e in case.checks:
        _check(e, result, diff)
    if result.output is not None:
        for e in case.expect:
            got, error = _lookup(result.output, e.field)
            if error:
                diff(e, error)
                continue
            message = match(e.expected, got, e.raw)
            if message:
                diff(e, message)
    return diffs


def _lookup(output: dict[str, Any] | HL7Message, field: str) -> tuple[Any, str]:
    if isinstance(output, HL7Message):
        try:
            return output.get(field) or None, ""
        except ValueError as exc:
            return None, str(exc)
    try:
        value = get_in(output, parse_record_path(field))
    except RecordPathError as exc:
        return None, str(exc)
    return (None if value == "" else value), ""


def match(expected: Any, got: Any, raw: str | None = None) -> str:
    """"" when ``got`` satisfies ``expected``, else "expected …, got …"."""
    if isinstance(expected, dict) and len(expected) == 1 and next(iter(expected)) in ASSERTIONS:
        return _assertion(next(iter(expected)), next(iter(expected.values())), got)
    if expected is None:
        return "" if is_empty(got) else f"expected absent or empty, got {show(got)}"
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return f"expected {show(expected)}, got {show(got)}"
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            inner = match(e, g)
            if inner:
                return f"[{i}]: {inner}"
        return ""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"expected {show(expected)}, got {show(got)}"
        for k, want in expected.items():
            try:
                inner_got = get_in(got, parse_record_path(str(k)))
            except RecordPathError as exc:
                return str(exc)
            inner = match(want, None if inner_got == "" else inner_got)
            if inner:
                return f".{k}: {inner}"
        return ""
    want = expected if isinstance(expected, str) else text_of(expected)
    if isinstance(got, str) and (got == want or (raw is not None and got == raw)):
        return ""
    return f"expected {show(raw if raw is not None else want)}, got {show(got)}"


def _assertion(kind: str, arg: Any, got: Any) -> str:
    if kind == "present":
        if bool(arg) == (not is_empty(got)):
            return ""
        return f"expected {'a value' if arg else 'absent or empty'}, got {show(got)}"
    if kind == "matches":
        if not isinstance(got, str) or re.search(str(arg), got) is None:
            return f"expected a match of {show(str(arg))}, got {show(got)}"
        return ""
    if kind == "contains":
        ok = (text_of(arg) in got) if isinstance(got, str | list) else False
        return "" if ok else f"expected to contain {show(text_of(arg))}, got {show(got)}"
    size = len(got) if isinstance(got, list | dict | str) else 0
    return "" if size == arg else f"expected length {arg}, got {size} ({show(got)})"


def _check(e: Expectation, result: MappingResult, diff: Any) -> None:
    if e.field == "expect_error_code":
        want = e.raw or text_of(e.expected)
        if result.error_code != want:
            diff(e, f"expected {show(want)}, got {show(result.error_code)}")
    elif e.field == "expect_location":
        if result.location != text_of(e.expected):
            diff(e, f"expected {show(text_of(e.expected))}, got {show(result.location)}")
    elif e.field == "expect_routes":
        routes = list(result.routes) if result.routes is not None else None
        wanted_routes = e.expected if isinstance(e.expected, list) or e.expected is None \
            else [e.expected]
        if routes != wanted_routes:
            diff(e, f"expected {show(wanted_routes)}, got {show(routes)}")
    elif e.field == "expect_warnings":
        wanted = e.expected if isinstance(e.expected, list) else [e.expected]
        if wanted == [] and result.warnings:
            diff(e, f"expected no warnings, got {show(list(result.warnings))}")
        for w in wanted:
            if not any(text_of(w) in got for got in result.warnings):
                diff(e, f"expected a warning containing {show(text_of(w))}, got "
                     f"{show(list(result.warnings))}")
    elif e.field == "expect_segments":
        got_names = result.message.segment_names if isinstance(result.output, HL7Message) else []
        if got_names != e.expected:
            diff(e, f"expected {show(e.expected)}, got {show(got_names)}")

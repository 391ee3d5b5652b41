"""Date/time reformatting with partial precision: HL7 TS ↔ DICOM DA / TM / DT."""

from __future__ import annotations

import calendar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms.dates import DateFormatError, compile_format, reformat


@pytest.mark.parametrize(("value", "source", "target", "expected"), [
    ("20261122083000", "hl7", "DA", "20261122"),
    ("20261122083000", "hl7", "TM", "083000"),
    ("202611220830", "hl7", "TM", "0830"),            # minute precision stays minutes
    ("2026112208", "hl7", "TM", "08"),
    ("20261122", "hl7", "TM", ""),                    # no time at all
    ("2026", "hl7", "DA", "2026"),                    # never invents a month and day
    ("2026", "hl7", "DA", "2026"),
    ("20261122083000.1234", "hl7", "TM", "083000.1234"),
    ("20261122083000.1234+0100", "hl7", "DT", "20261122083000.1234+0100"),
    ("20261122091500+0100", "hl7", "%z", "+0100"),
    ("20261122091500", "hl7", "%z", ""),
    ("202611220915-0500", "hl7", "DT", "202611220915-0500"),   # offset kept after truncation
    ("20261122083000", "hl7", "%d.%m.%Y %H:%M", "22.11.2026 08:30"),
    ("202611", "hl7", "%Y-%m-%d", "2026-11"),
    ("22.11.2026", "%d.%m.%Y", "DA", "20261122"),
    ("083000.123456", "TM", "%H:%M:%S", "08:30:00"),
    ("20261122093000.123456", "%Y%m%d%H%M%S.%f", "hl7", "20261122093000.123456"),
    (" 20261122 ", "hl7", "DA", "20261122"),          # surrounding blanks are ignored
])
def test_reformat(value: str, source: str, target: str, expected: str) -> None:
    assert reformat(value, source, target) == expected


def test_pad_fills_missing_parts_instead_of_truncating() -> None:
    assert reformat("2026", "hl7", "DA", pad=True) == "20260101"
    assert reformat("2026112208", "hl7", "TM", pad=True) == "080000"


@pytest.mark.parametrize("value", ["20261301", "20260230", "20250229", "2026112224",
                                   "202611222360", "20261122235961", "20261122+1500",
                                   "20261122+0160", "2026-11-22", "x", "", "202611221"])
def test_invalid_values_are_rejected(value: str) -> None:
    with pytest.raises(DateFormatError):
        compile_format("hl7").parse(value)


def test_leap_day_is_valid_in_a_leap_year() -> None:
    assert reformat("20240229", "hl7", "DA") == "20240229"


@pytest.mark.parametrize(("fmt", "message"), [
    ("%Y%q", "unsupported directive %q"), ("%Y%Y", "appears twice"), ("YYYY", "no %-directive"),
    ("%z%Y", "%z must be the last"), ("%Y%", "a lone '%'"),
])
def test_bad_formats_are_refused(fmt: str, message: str) -> None:
    with pytest.raises(DateFormatError, match=message):
        compile_format(fmt)


@st.composite
def hl7_timestamps(draw: st.DrawFn) -> str:
    """Valid HL7 TS values of any precision, with or without fraction and offset."""
    year = draw(st.integers(1900, 2100))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, calendar.monthrange(year, month)[1]))
    parts = [f"{year:04d}", f"{month:02d}", f"{day:02d}", f"{draw(st.integers(0, 23)):02d}",
             f"{draw(st.integers(0, 59)):02d}", f"{draw(st.integers(0, 59)):02d}"]
    text = "".join(parts[: draw(st.integers(1, 6))])
    if len(text) == 14 and draw(st.booleans()):
        text += "." + draw(st.text("0123456789", min_size=1, max_size=4))
    if draw(st.booleans()):
        text += draw(st.sampled_from("+-")) + f"{draw(st.integers(0, 14)):02d}" \
            f"{draw(st.sampled_from([0, 15, 30, 45])):02d}"
    return text


@given(hl7_timestamps())
def test_hl7_timestamp_round_trips(text: str) -> None:
    fmt = compile_format("hl7")
    assert fmt.format(fmt.parse(text)) == text


@given(hl7_timestamps())
def test_dicom_dt_round_trips_and_agrees_with_da_and_tm(text: str) -> None:
    dt = reformat(text, "hl7", "DT")
    assert reformat(dt, "DT", "DT") == dt
    core = text.split("+", maxsplit=1)[0].split("-", maxsplit=1)[0]
    assert reformat(text, "hl7", "DA") == core[:8]
    assert reformat(text, "hl7", "TM") == core[8:]

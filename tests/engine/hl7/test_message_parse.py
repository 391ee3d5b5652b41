"""Parsing: fixtures, line endings, header properties, laziness and malformed input."""

from __future__ import annotations

import pickle

import pytest

from engine.hl7 import Delimiters, HL7Message, HL7ParseError, is_known_version

from .conftest import fixture_bytes, fixture_text


def test_orm_header_properties(orm: str) -> None:
    m = HL7Message.parse(orm)
    assert m.message_type == "ORM^O01"
    assert m.message_code == "ORM"
    assert m.trigger_event == "O01"
    assert m.structure == ""
    assert m.control_id == "MSG00001"
    assert m.processing_id == "P"
    assert m.version == "2.3.1"
    assert m.charset == "8859/1"
    assert m.accept_ack_type == ""
    assert m.app_ack_type == ""
    assert (m.sending_application, m.sending_facility) == ("RIS", "GENHOSP")
    assert (m.receiving_application, m.receiving_facility) == ("RADBRIDGE", "GENHOSP")
    assert m.segment_names == ["MSH", "PID", "PV1", "ORC", "OBR", "ZDS"]
    assert m.delimiters == Delimiters("|", "^", "~", "\\", "&", "")
    assert len(m) == 6


def test_omi_structure_and_fields(omi: str) -> None:
    m = HL7Message.parse(omi)
    assert m.message_type == "OMI^O23"
    assert m.structure == "OMI_O23"
    assert m.charset == "UNICODE UTF-8"
    assert m.get("PID-3.4") == "GENHOSP&1.2.3.4.5&ISO"
    assert m.get("PID-3.4.2") == "1.2.3.4.5"
    assert m.get("IPC-1.1") == "ACC0002"
    assert m.get("IPC-3") == "1.2.826.0.1.3680043.10.1001.2"
    assert m.get("TQ1-7") == "20261122100000"
    assert m.get("MSH-7") == "20261122091500+0100"


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_accepts_any_segment_terminator(sep: str) -> None:
    text = fixture_text("orm_o01_nw_v231.hl7", sep)
    m = HL7Message.parse(text)
    assert m.segment_names == ["MSH", "PID", "PV1", "ORC", "OBR", "ZDS"]
    assert m.get("OBR-18") == "ACC0001"
    assert m.encode() == fixture_text("orm_o01_nw_v231.hl7", "\r")


def test_ignores_blank_and_trailing_whitespace_lines(orm: str) -> None:
    messy = "\ufeff\r\n" + orm.replace("\rPV1", "\r\r\n  \rPV1") + "\r\n \t\r\n\r\n"
    m = HL7Message.parse(messy)
    assert m.segment_names == ["MSH", "PID", "PV1", "ORC", "OBR", "ZDS"]
    assert m.encode() == orm


def test_leading_bom_is_tolerated(orm: str) -> None:
    assert HL7Message.parse("\ufeff" + orm).control_id == "MSG00001"


def test_round_trip_without_trailing_terminator(orm: str) -> None:
    text = orm.rstrip("\r")
    assert HL7Message.parse(text).encode() == text
    assert HL7Message.parse(text).encode("\n", trailing=True) == text.replace("\r", "\n") + "\n"


def test_segments_are_split_lazily(orm: str) -> None:
    m = HL7Message.parse(orm)
    assert m._fields[1:] == [None] * 5  # only MSH is split eagerly
    m.get("OBR-4.2")
    assert m._fields[4] is not None
    assert m._fields[1] is None


def test_unknown_version_is_not_a_parse_error() -> None:
    m = HL7Message.parse(fixture_text("unknown_version.hl7"))
    assert m.version == "9.9"
    assert not is_known_version(m.version)
    assert m.get("PID-3") == "PAT1"


@pytest.mark.parametrize(
    ("version", "known"),
    [("2.1", True), ("2.3.1", True), ("2.5.1", True), ("2.7.1", True), ("2.8.2", True),
     ("2.9", False), ("9.9", False), ("", False), ("2.5.1.1", False)],
)
def test_is_known_version(version: str, known: bool) -> None:
    assert is_known_version(version) is known


def test_v27_truncation_character() -> None:
    m = HL7Message.parse("MSH|^~\\&#|A|B|C|D|20260101||ADT^A01|1|P|2.7\rPID|1||X\\P\\Y")
    assert m.delimiters.truncation == "#"
    assert m.get("MSH-2") == "^~\\&#"
    assert m.get("PID-3") == "X#Y"


def test_custom_delimiters() -> None:
    m = HL7Message.parse("MSH*:!?$*A*B*C*D*20260101**ORM:O01*7*P*2.4\rPID*1**ID1:X$Y!ID2")
    assert m.delimiters == Delimiters("*", ":", "!", "?", "$", "")
    assert m.message_type == "ORM^O01"
    assert m.get("PID-3.2.2") == "Y"
    assert m.get("PID-3[2]") == "ID2"
    assert m.get("MSH-1") == "*"


# --- malformed input: each reason is asserted ----------------------------------------


def _reason(text: str) -> HL7ParseError:
    with pytest.raises(HL7ParseError) as info:
        HL7Message.parse(text)
    return info.value


def test_rejects_message_without_msh() -> None:
    err = _reason(fixture_text("malformed_no_msh.hl7"))
    assert err.reason == "message does not start with MSH"
    assert err.error_code == "100"


def test_rejects_bad_encoding_characters() -> None:
    err = _reason(fixture_text("malformed_bad_encoding_chars.hl7"))
    assert err.reason.startswith(
        "MSH-2 encoding characters '^~' are invalid: expected 4 characters such as ^~\\&"
    )
    assert err.error_code == "102"
    assert err.location == "MSH^1^2"


@pytest.mark.parametrize(
    ("msh2", "why"),
    [
        ("^^\\&", "each delimiter must be distinct"),
        ("^~\\^", "each delimiter must be distinct"),
        ("^~A&", "not letters, digits"),
        ("^~\\&#!", "expected 4 characters"),
        # a byte of invalid UTF-8 decoded as U+FFFD, or any other non-ASCII character
        ("^~\\\ufffd", "must be printable ASCII"),
        ("^\u00a7\\&", "must be printable ASCII"),
    ],
)
def test_rejects_invalid_delimiter_sets(msh2: str, why: str) -> None:
    err = _reason(f"MSH|{msh2}|A|B|C|D|20260101||ORM^O01|1|P|2.5")
    assert f"MSH-2 encoding characters '{msh2}' are invalid" in err.reason
    assert why in err.reason


def test_rejects_alphanumeric_field_separator() -> None:
    err = _reason("MSHX^~\\&XAXB")
    assert err.reason.startswith("MSH-1 field separator 'X' is invalid")


def test_rejects_non_ascii_field_separator() -> None:
    err = _reason("MSH\u00a6^~\\&\u00a6A\u00a6B")
    assert err.reason.startswith("MSH-1 field separator '\u00a6' is invalid: expected a "
                                 "printable ASCII")


def test_rejects_truncated_msh() -> None:
    err = _reason(fixture_text("malformed_truncated_msh.hl7"))
    assert err.reason == "MSH-9 message type is missing: MSH is truncated after MSH-4"
    assert err.error_code == "101"
    assert err.location == "MSH^1^9"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("MSH|^~\\&|A|B|C|D|1||ORM^O01", "MSH-10 message control id is missing: MSH is truncated"),
        ("MSH|^~\\&|A|B|C|D|1||ORM^O01|7", "MSH-11 processing id is missing: MSH is truncated"),
        ("MSH|^~\\&|A|B|C|D|1||ORM^O01|7|P", "MSH-12 version id is missing: MSH is truncated"),
        ("MSH|^~\\&|A|B|C|D|1|||7|P|2.5", "MSH-9 message type is missing: MSH-9 is empty"),
        ("MSH|^~\\&|A|B|C|D|1||ORM^O01||P|2.5", "MSH-10 message control id is missing: MSH-10"),
        ("MSH|^~\\&|A|B|C|D|1||^O01|7|P|2.5", "MSH-9.1 message code is missing"),
        ("MSH", "MSH-1 field separator is missing"),
    ],
)
def test_rejects_missing_required_msh_fields(header: str, reason: str) -> None:
    assert _reason(header + "\rPID|1").reason.startswith(reason)


@pytest.mark.parametrize("bad", ["pid|1", "PI|1", "PIDX|1", "P-D|1", "ÄBC|1", "PID^1"])
def test_rejects_invalid_segment_names(bad: str, orm: str) -> None:
    err = _reason(orm + bad + "\r")
    assert "has an invalid name" in err.reason
    assert "expected 3 upper-case letters or digits" in err.reason
    assert err.reason.startswith("segment 7 ")


def test_rejects_binary_junk() -> None:
    text = fixture_bytes("binary_junk.bin").decode("latin-1")
    assert _reason(text).reason == "message does not start with MSH"


def test_rejects_empty_input() -> None:
    assert _reason("").reason == "message does not start with MSH"
    assert _reason("\r\n  \n").reason == "message does not start with MSH"


def test_parse_error_is_a_value_error_and_pickles() -> None:
    err = HL7ParseError("boom", "207", "PID^1^3")
    assert isinstance(err, ValueError)
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.reason, clone.error_code, clone.location) == ("boom", "207", "PID^1^3")
    assert str(clone) == "boom"

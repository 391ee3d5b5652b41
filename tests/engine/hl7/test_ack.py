"""ACK building (original/enhanced, ERR layouts, unparseable input), ACK policy and parse_ack."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.hl7 import (
    HL7Message,
    HL7ParseError,
    build_ack,
    expected_ack_mode,
    new_control_id,
    parse_ack,
    should_send_accept_ack,
    should_send_application_ack,
)

from .conftest import fixture_text

NOW = datetime(2026, 11, 22, 8, 30, 5)


def _ack(msg: HL7Message | None, code: str, **kw: str) -> HL7Message:
    return HL7Message.parse(build_ack(msg, code, now=NOW, control_id="ACK1", **kw))


def test_ack_echoes_control_id_and_swaps_applications(orm: str) -> None:
    text = build_ack(HL7Message.parse(orm), "AA", now=NOW, control_id="ACK1")
    assert text == (
        "MSH|^~\\&|RADBRIDGE|GENHOSP|RIS|GENHOSP|20261122083005||ACK^O01^ACK|ACK1|P|2.3.1"
        "||||||8859/1\rMSA|AA|MSG00001"
    )


def test_ack_echoes_control_id_byte_for_byte() -> None:
    m = HL7Message.parse("MSH|^~\\&|A|B|C|D|1||ORM^O01|ID\\T\\1|P|2.5\rPID|1")
    ack = _ack(m, "AA")
    assert ack.get_encoded("MSA-2") == "ID\\T\\1"
    assert ack.get("MSA-2") == "ID&1"


def test_ack_v25_error_uses_err_2_3_4_8(omi: str) -> None:
    ack = _ack(HL7Message.parse(omi), "AE", text="OBR-18 too long | check",
               error_code="102", error_location="OBR^1^18")
    assert ack.segment_names == ["MSH", "MSA", "ERR"]
    assert ack.get("MSH-9") == "ACK^O23^ACK"
    assert ack.get("MSH-12") == "2.5.1"
    assert ack.get("MSA-3") == "OBR-18 too long | check"
    assert ack.segments("ERR")[0].encode() == (
        "ERR||OBR^1^18|102^Data type error^HL70357|E||||OBR-18 too long \\F\\ check"
    )


def test_ack_error_location_from_path(omi: str) -> None:
    ack = _ack(HL7Message.parse(omi), "AR", error_location="OBR[1]-4.2")
    assert ack.get("ERR-2") == "OBR^1^4^1^2"
    assert ack.get("ERR-3") == "207^Application internal error^HL70357"


def test_ack_pre_v25_error_uses_err_1(orm: str) -> None:
    ack = _ack(HL7Message.parse(orm), "AE", text="no room", error_location="OBR^1^18")
    assert ack.segments("ERR")[0].encode() == (
        "ERR|OBR^1^18^207&Application internal error&HL70357"
    )
    ack = _ack(HL7Message.parse(orm), "AR", error_code="101")
    assert ack.segments("ERR")[0].encode() == "ERR|^^^101&Required field missing&HL70357"
    assert ack.get("MSA-3") == ""


def test_enhanced_mode_commit_codes(omi: str) -> None:
    m = HL7Message.parse(omi.replace("P|2.5.1|", "P|2.5.1|||AL|NE|"))
    assert expected_ack_mode(m) == "enhanced"
    assert _ack(m, "CA").get("MSA-1") == "CA"
    assert _ack(m, "CA").segment_names == ["MSH", "MSA"]
    assert _ack(m, "CR", text="queue full").get("ERR-8") == "queue full"
    assert _ack(m, "CE").segment_names == ["MSH", "MSA", "ERR"]


def test_ack_before_v231_has_no_message_structure() -> None:
    m = HL7Message.parse("MSH|^~\\&|A|B|C|D|1||ORM^O01|1|P|2.3\rPID|1")
    assert _ack(m, "AA").get("MSH-9") == "ACK^O01"


def test_ack_rejects_unknown_code(orm: str) -> None:
    with pytest.raises(ValueError, match="ACK code must be one of"):
        build_ack(HL7Message.parse(orm), "OK")


def test_ack_copies_unknown_version() -> None:
    m = HL7Message.parse(fixture_text("unknown_version.hl7"))
    ack = _ack(m, "AR", text="unsupported version 9.9", error_code="203")
    assert ack.get("MSH-12") == "9.9"
    assert ack.get("ERR-3.1") == "203"
    assert ack.get("ERR-3.2") == "Unsupported version id"


def test_ack_escapes_text_with_message_delimiters() -> None:
    m = HL7Message.parse("MSH*:!?$*A*B*C*D*1**ORM:O01*7*P*2.5\rPID*1")
    raw = build_ack(m, "AE", text="bad * value : here", now=NOW, control_id="K")
    assert raw.startswith("MSH*:!?$*C*D*A*B*20261122083005**ACK:O01:ACK*K*P*2.5\r")
    assert "MSA*AE*7*bad ?F? value ?S? here" in raw
    assert parse_ack(raw).text == "bad * value : here"


def test_ack_for_unparseable_input_is_minimal_and_valid() -> None:
    raw = build_ack(None, "AR", text="message does not start with MSH", now=NOW,
                    control_id="N1")
    assert raw == (
        "MSH|^~\\&|RADBRIDGE||||20261122083005||ACK^^ACK|N1|P|2.5.1\r"
        "MSA|AR||message does not start with MSH\r"
        "ERR|||207^Application internal error^HL70357|E||||message does not start with MSH"
    )
    info = parse_ack(raw)
    assert (info.code, info.control_id, info.accepted) == ("AR", "", False)


def test_ack_salvages_fallback_header_from_bad_encoding_chars() -> None:
    text = fixture_text("malformed_bad_encoding_chars.hl7")
    with pytest.raises(HL7ParseError) as info:
        HL7Message.parse(text)
    err = info.value
    ack = _ack(None, "AR", text=err.reason, error_code=err.error_code,
               error_location=err.location, raw_fallback_header=text.split("\r")[0])
    assert ack.get("MSA-2") == "MSGBAD1"
    assert ack.get("MSH-3") == "RADBRIDGE"
    assert (ack.get("MSH-5"), ack.get("MSH-6")) == ("RIS", "GENHOSP")
    assert ack.get("MSH-9") == "ACK^O01^ACK"
    assert ack.get("MSH-12") == "2.3.1"
    assert ack.get("ERR-1") == "MSH^1^2^102&Data type error&HL70357"
    assert ack.get("MSA-3").startswith("MSH-2 encoding characters '^~' are invalid")


def test_ack_fallback_header_for_binary_junk_is_ignored() -> None:
    junk = bytes(range(256)).decode("latin-1")
    ack = _ack(None, "AR", text="not HL7", raw_fallback_header=junk)
    assert ack.get("MSH-3") == "RADBRIDGE"
    assert ack.get("MSA-2") == ""


def test_ack_timestamp_with_timezone(orm: str) -> None:
    tz = timezone(timedelta(hours=1))
    raw = build_ack(HL7Message.parse(orm), "AA", now=NOW.replace(tzinfo=tz))
    assert HL7Message.parse(raw).get("MSH-7") == "20261122083005+0100"


def test_fresh_control_ids_are_unique_and_fit_msh10(orm: str) -> None:
    ids = {new_control_id() for _ in range(5000)}
    assert len(ids) == 5000
    assert all(len(i) <= 20 for i in ids)
    a = HL7Message.parse(build_ack(HL7Message.parse(orm), "AA")).control_id
    b = HL7Message.parse(build_ack(HL7Message.parse(orm), "AA")).control_id
    assert a != b
    assert a != "MSG00001"


def test_expected_ack_mode(orm: str) -> None:
    assert expected_ack_mode(HL7Message.parse(orm)) == "original"
    assert expected_ack_mode(HL7Message.parse(orm.replace("P|2.3.1|||", "P|2.3.1|||ER"))) == (
        "enhanced"
    )
    assert expected_ack_mode(HL7Message.parse(orm.replace("P|2.3.1||||", "P|2.3.1||||AL"))) == (
        "enhanced"
    )


@pytest.mark.parametrize(
    ("msh15", "success", "send"),
    [("", True, True), ("", False, True), ("AL", True, True), ("AL", False, True),
     ("NE", True, False), ("NE", False, False), ("ER", True, False), ("ER", False, True),
     ("SU", True, True), ("SU", False, False), ("XX", False, True)],
)
def test_should_send_accept_ack(msh15: str, success: bool, send: bool) -> None:
    m = HL7Message.parse(f"MSH|^~\\&|A|B|C|D|1||ORM^O01|1|P|2.5|||{msh15}|{msh15}")
    assert should_send_accept_ack(m, success) is send
    assert should_send_application_ack(m, success) is send


def test_parse_ack_reads_msa_and_err() -> None:
    raw = build_ack(HL7Message.parse(fixture_text("omi_o23_nw_v251.hl7")), "AE",
                    text="room closed", error_code="207", error_location="OBR^1^18")
    info = parse_ack(raw)
    assert info.code == "AE"
    assert info.control_id == "MSG00004"
    assert info.text == "room closed"
    assert info.message_type == "ACK^O23"
    assert info.error == "207 Application internal error at OBR^1^18: room closed"
    assert not info.accepted


def test_parse_ack_reads_pre_v25_err() -> None:
    raw = build_ack(HL7Message.parse(fixture_text("orm_o01_nw_v231.hl7")), "AR",
                    error_code="101", error_location="PID^1^3")
    assert parse_ack(raw).error == "101 Required field missing at PID^1^3"


def test_parse_ack_accepts_any_message_with_msa() -> None:
    info = parse_ack(
        "MSH|^~\\&|MPI|GENHOSP|RIS|GENHOSP|20261122||ADR^A19^ADR_A19|Q1|P|2.5\r"
        "MSA|AA|QRY0001\rQAK|Q1|OK\rPID|1||PAT1^^^GENHOSP^MR"
    )
    assert (info.code, info.control_id, info.message_type) == ("AA", "QRY0001", "ADR^A19")
    assert info.accepted
    assert info.error == ""


def test_parse_ack_without_msa_raises(orm: str) -> None:
    with pytest.raises(HL7ParseError, match="ORM\\^O01 has no MSA segment"):
        parse_ack(orm)
    with pytest.raises(HL7ParseError, match="does not start with MSH"):
        parse_ack("garbage")


def test_ack_for_unparseable_input_stays_ascii() -> None:
    header = "MSH|^~|RÏS|GENHÖSP|X|Y|1||ORM^O01|MSG\u00e91|P|2.5"
    raw = build_ack(None, "AR", text="bad MSH-2", raw_fallback_header=header)
    raw.encode("ascii")
    assert parse_ack(raw).control_id == "MSG1"


def test_control_ids_stay_unique_across_epochs_threads_and_forks() -> None:
    import threading

    from engine.hl7 import ids

    seen: list[str] = []

    def make(n: int) -> None:
        seen.extend(new_control_id() for _ in range(n))

    threads = [threading.Thread(target=make, args=(50_000,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == len(seen) == 200_000  # > 3 epochs of 65,536
    before = new_control_id()
    ids._after_fork()  # as in a forked child: same counter, new pid byte, new prefixes
    after = new_control_id()
    assert after[:13] != before[:13] and after not in seen

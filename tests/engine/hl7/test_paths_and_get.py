"""Path syntax and field access: get, get_all, segments, Segment.get, groups."""

from __future__ import annotations

import pytest

from engine.hl7 import HL7Message, Path


def test_path_parse_full_syntax() -> None:
    assert Path.parse("OBR[2]-4[3].1.2") == Path("OBR", 2, 4, 3, 1, 2)
    assert Path.parse("PID-3") == Path("PID", None, 3, None, None, None)
    assert Path.parse("PID-3.1") == Path("PID", None, 3, None, 1, None)
    assert Path.parse("ZDS-1.2") == Path("ZDS", None, 1, None, 2, None)
    assert str(Path.parse("OBR[2]-4[3].1.2")) == "OBR[2]-4[3].1.2"


def test_path_parse_is_cached() -> None:
    assert Path.parse("PID-5.1") is Path.parse("PID-5.1")


@pytest.mark.parametrize(
    "bad", ["PID", "PID3", "pid-3", "PID-", "PID-3.", "PID-3..1", "PID-3.1.2.3", "PID-x",
            "PID[-1]-3", "PIDX-3", "PID-3[a]", " PID-3", "PID-٣"],
)
def test_bad_path_syntax_raises_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match=r"invalid HL7 path .*expected SEG\[-n\] like 'PID-3'"):
        Path.parse(bad)


@pytest.mark.parametrize("bad", ["PID-0", "PID[0]-3", "PID-3[0]", "PID-3.0", "PID-3.1.0"])
def test_zero_indexes_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="start at 1"):
        Path.parse(bad)


def test_get_uses_hl7_numbering_for_msh(orm: str) -> None:
    m = HL7Message.parse(orm)
    assert m.get("MSH-1") == "|"
    assert m.get("MSH-2") == "^~\\&"
    assert m.get("MSH-3") == "RIS"
    assert m.get("MSH-9") == "ORM^O01"
    assert m.get("MSH-9.2") == "O01"
    assert m.get("MSH-18") == "8859/1"
    assert m.get("MSH-2.2") == ""


def test_get_field_component_subcomponent(orm: str) -> None:
    m = HL7Message.parse(orm)
    assert m.get("PID-3") == "PAT10001^^^GENHOSP^MR"  # structured: encoded text
    assert m.get("PID-3.1") == "PAT10001"
    assert m.get("PID-3.1.1") == "PAT10001"
    assert m.get("PID-3.1.2") == ""
    assert m.get("PID-3.4") == "GENHOSP"
    assert m.get("PID-3.9") == ""
    assert m.get("PID-5.2") == "ALICE"
    assert m.get("PID-7") == "19800214"
    assert m.get("PID-7.1") == "19800214"
    assert m.get("PID-7.2") == ""
    assert m.get("OBR-4.2") == "CT HEAD WITHOUT CONTRAST"
    assert m.get("OBR-18") == "ACC0001"
    assert m.get("OBR-44.1") == "CTHEAD"
    assert m.get("OBR-99") == ""
    assert m.get("ORC-7.4") == "20261122090000"


def test_get_absent_segment_or_occurrence_is_empty(orm: str) -> None:
    m = HL7Message.parse(orm)
    assert m.get("OBX-5") == ""
    assert m.get("OBR[2]-4") == ""
    assert m.get("OBR[1]-18") == "ACC0001"


def test_get_repetitions_and_occurrences() -> None:
    m = HL7Message.parse(
        "MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5\r"
        "PID|1||ID1^^^H1^MR~ID2^^^H2^NH~~ID4\r"
        "OBX|1|TX|C1||first~second\r"
        "OBX|2|TX|C2||third\r"
        "OBX|3|TX|C3||\r"
    )
    assert m.get("PID-3") == "ID1^^^H1^MR"
    assert m.get("PID-3[1].1") == "ID1"
    assert m.get("PID-3[2].1") == "ID2"
    assert m.get("PID-3[2].4") == "H2"
    assert m.get("PID-3[3]") == ""
    assert m.get("PID-3[4]") == "ID4"
    assert m.get("PID-3[5]") == ""
    assert m.get("OBX[2]-5") == "third"
    assert m.get("OBX-5") == "first"
    assert m.get_all("PID-3.1") == ["ID1", "ID2", "", "ID4"]
    assert m.get_all("PID-3[2].4") == ["H2"]
    assert m.get_all("OBX-5") == ["first", "second", "third"]
    assert m.get_all("OBX[1]-5") == ["first", "second"]
    assert m.get_all("OBX[3]-5") == []
    assert m.get_all("OBX[9]-5") == []
    assert m.get_all("MSH-2") == ["^~\\&"]
    assert m.get_all("NTE-3") == []


def test_get_unescapes_only_leaves() -> None:
    m = HL7Message.parse(
        "MSH|^~\\&|A|B|C|D|1||ORM^O01|1|P|2.5\r"
        "OBR|1|||XR^CHEST PA \\T\\ LATERAL^L" + "|" * 14 + "A\\S\\B\r"
        "NTE|1||a\\F\\b\\S\\c\\E\\d\\T\\e\\R\\f\r"
    )
    assert m.get("OBR-4.2") == "CHEST PA & LATERAL"
    assert m.get("OBR-4") == "XR^CHEST PA \\T\\ LATERAL^L"
    assert m.get("OBR-18") == "A^B"
    assert m.get("NTE-3") == "a|b^c\\d&e~f"
    assert m.get_encoded("NTE-3") == "a\\F\\b\\S\\c\\E\\d\\T\\e\\R\\f"


def test_segments_and_segment_views(omi: str) -> None:
    m = HL7Message.parse(omi)
    obr = m.segments("OBR")
    assert len(obr) == 1
    assert obr[0].name == "OBR"
    assert obr[0].index == 5
    assert obr[0].get(4, comp=2) == "MR KNEE LEFT"
    assert obr[0].get(4) == "MRKNEE^MR KNEE LEFT^L"
    assert obr[0].get(99) == ""
    assert obr[0].get(0) == ""
    assert obr[0].fields[:3] == ["OBR", "1", "PLC0002"]
    assert obr[0].get_all(4, comp=1) == ["MRKNEE"]
    assert len(obr[0]) == 44
    pid = m.segment("PID")
    assert pid is not None
    assert pid.get(3, 1, 4, 2) == "1.2.3.4.5"
    assert m.segment("OBX") is None
    assert [s.name for s in m] == m.segment_names
    msh = m.segment("MSH")
    assert msh is not None
    assert msh.get(1) == "|"
    assert msh.get(2) == "^~\\&"
    assert msh.get(9, comp=3) == "OMI_O23"
    assert msh.get_all(2) == ["^~\\&"]
    assert msh.encode().startswith("MSH|^~\\&|RIS|")
    assert obr[0] == m.segments("OBR")[0]
    assert repr(obr[0]) == "<Segment OBR #5>"


def test_groups_collect_order_segments() -> None:
    m = HL7Message.parse(
        "MSH|^~\\&|A|B|C|D|1||OMI^O23|1|P|2.5.1\r"
        "PID|1\r"
        "ORC|NW|P1\rTQ1|1\rOBR|1|P1\rNTE|1||n1\rIPC|ACC1\rZDS|1.2.3\r"
        "ORC|NW|P2\rOBR|1|P2\rIPC|ACC2\r"
        "PV1|1\rNTE|1||orphan\r"
    )
    groups = m.groups("ORC", {"OBR", "TQ1", "IPC", "ZDS", "NTE"})
    assert [[s.name for s in g] for g in groups] == [
        ["ORC", "TQ1", "OBR", "NTE", "IPC", "ZDS"],
        ["ORC", "OBR", "IPC"],
    ]
    assert [g[0].get(2) for g in groups] == ["P1", "P2"]
    assert m.groups("OBX", {"NTE"}) == []

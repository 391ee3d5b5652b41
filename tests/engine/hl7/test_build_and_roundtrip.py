"""Building and editing (set/encode/new_message) plus property-based round trips.

``ref_get`` below is an independent, eager, deliberately simple implementation of
the documented ``get`` rules; hypothesis checks the lazy parser agrees with it.
"""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.hl7 import Delimiters, HL7Message, Path, new_message


def test_set_creates_fields_components_and_escapes(orm: str) -> None:
    m = HL7Message.parse(orm)
    m.set("OBR-4.2", "CT HEAD & NECK | urgent")
    assert m.get("OBR-4.2") == "CT HEAD & NECK | urgent"
    assert "CTHEAD^CT HEAD \\T\\ NECK \\F\\ urgent^L" in m.encode()
    m.set("PID-3[2].4.2", "1.2.3")
    assert m.get("PID-3[2]") == "^^^&1.2.3"
    assert m.get("PID-3[2].4.2") == "1.2.3"
    assert m.get("PID-3.1") == "PAT10001"
    m.set("ZDS-5", "x")
    assert m.segments("ZDS")[0].encode() == (
        "ZDS|1.2.826.0.1.3680043.10.1001.1^100^Application^DICOM||||x"
    )


def test_set_whole_field_replaces_all_repetitions() -> None:
    m = HL7Message.parse("MSH|^~\\&|A|B|C|D|1||ORM^O01|1|P|2.5\rPID|1||A~B~C")
    m.set("PID-3[2]", "Z")
    assert m.get_all("PID-3") == ["A", "Z", "C"]
    m.set("PID-3", "only")
    assert m.get_all("PID-3") == ["only"]


def test_set_appends_missing_segments() -> None:
    m = HL7Message.parse("MSH|^~\\&|A|B|C|D|1||ORM^O01|1|P|2.5\rPID|1")
    m.set("NTE[2]-3", "second note")
    assert m.segment_names == ["MSH", "PID", "NTE", "NTE"]
    assert m.encode() == (
        "MSH|^~\\&|A|B|C|D|1||ORM^O01|1|P|2.5\rPID|1\rNTE\rNTE|||second note"
    )


def test_set_msh_fields_updates_properties(orm: str) -> None:
    m = HL7Message.parse(orm)
    m.set("MSH-10", "NEW^ID")
    assert m.control_id == "NEW^ID"
    assert m.encode().startswith(
        "MSH|^~\\&|RIS|GENHOSP|RADBRIDGE|GENHOSP|20261122083000||ORM^O01|NEW\\S\\ID|"
    )
    with pytest.raises(ValueError, match="MSH-1 and MSH-2"):
        m.set("MSH-2", "#")


def test_set_raw_values() -> None:
    m = HL7Message.parse("MSH|^~\\&|A|B|C|D|1||ORM^O01|1|P|2.5\rPID|1")
    m.set("PID-5", "DOE^JOHN~DOE^J", escape_value=False)
    assert m.get("PID-5[2].2") == "J"
    with pytest.raises(ValueError, match="contains delimiter '\\^'"):
        m.set("PID-5.1", "A^B", escape_value=False)
    with pytest.raises(ValueError, match="contains delimiter '\\|'"):
        m.set("PID-5", "A|B", escape_value=False)


def test_segment_views_see_edits(orm: str) -> None:
    m = HL7Message.parse(orm)
    obr = m.segments("OBR")[0]
    m.set("OBR-18", "ACC9")
    assert obr.get(18) == "ACC9"


def test_new_message_builds_a_parseable_header() -> None:
    m = new_message(
        "OMI^O23^OMI_O23",
        control_id="C1",
        receiving_application="PACS",
        charset="UNICODE UTF-8",
        timestamp=datetime(2026, 11, 22, 9, 30, 0),
    )
    assert m.encode() == (
        "MSH|^~\\&|RADBRIDGE||PACS||20261122093000||OMI^O23^OMI_O23|C1|P|2.5.1||||||UNICODE UTF-8\r"
    )
    m.set("PID-3.1", "PAT1")
    assert HL7Message.parse(m.encode()).get("PID-3.1") == "PAT1"
    assert len(new_message("ADT^A01").control_id) == 19


def test_new_message_with_custom_delimiters() -> None:
    m = new_message("ORM^O01", control_id="1", delimiters=Delimiters("*", ":", "!", "?", "$"))
    assert m.encode().startswith("MSH*:!?$*RADBRIDGE****")
    assert m.message_type == "ORM^O01"


# --- property-based ------------------------------------------------------------------

_LEAF = st.text(st.sampled_from(list("AB1 .\\FSTREXHN0D")), max_size=6)
_SUB = st.lists(_LEAF, min_size=1, max_size=3).map("&".join)
_COMP = st.lists(_SUB, min_size=1, max_size=3).map("^".join)
_REP = st.lists(_COMP, min_size=1, max_size=3).map("~".join)
_NAMES = st.sampled_from(["PID", "PV1", "ORC", "OBR", "NTE", "ZDS", "OBX", "Z01"])
_SEGMENT = st.builds(
    lambda name, fields: "|".join([name, *fields]), _NAMES, st.lists(_REP, max_size=5)
)
_HEADER = "MSH|^~\\&|RIS|GENHOSP|RADBRIDGE|GENHOSP|20261122||ORM^O01^ORM_O01|X1|P|2.5.1"


@st.composite
def _messages(draw: st.DrawFn) -> tuple[str, list[str], bool]:
    segs = [_HEADER + draw(st.sampled_from(["", "||||||8859/1", "|||AL|NE"])),
            *draw(st.lists(_SEGMENT, max_size=5))]
    term = st.sampled_from(["\r", "\n", "\r\n"])
    blank = st.sampled_from(["", "\r", "\n", "\r\n", "  \n", "\t\r"])
    text = segs[0]
    for s in segs[1:]:
        text += draw(term) + draw(blank) + s
    trailing = draw(st.booleans())
    if trailing:
        text += draw(term) + draw(blank)
    return text, segs, trailing


@settings(max_examples=200)
@given(_messages())
def test_encode_round_trips_parsed_messages(case: tuple[str, list[str], bool]) -> None:
    text, segs, trailing = case
    m = HL7Message.parse(text)
    assert m.segment_names == [s[:3] for s in segs]
    assert m.encode() == "\r".join(segs) + ("\r" if trailing else "")
    assert HL7Message.parse(m.encode()).encode() == m.encode()


_SIMPLE = {"F": "|", "S": "^", "T": "&", "R": "~", "E": "\\"}


def _ref_unescape(v: str) -> str:
    def sub(m: re.Match[str]) -> str:
        seq = m[1]
        if seq in _SIMPLE:
            return _SIMPLE[seq]
        if seq.startswith("X") and re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", seq[1:]):
            data = bytes.fromhex(seq[1:])
            if len(data) > 1:
                try:
                    return data.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            return data.decode("latin-1")
        return m[0]

    return re.sub(r"\\([^\\]*)\\", sub, v)


def _ref_get(segs: list[str], p: Path) -> str:
    """Eager reference: split everything, then walk the documented rules."""
    tree = []
    for s in segs:
        fields = s.split("|")
        if fields[0] == "MSH":
            fields.insert(1, "|")
        tree.append(fields)
    matches = [f for f in tree if f[0] == p.segment]
    occ = p.occurrence or 1
    if occ > len(matches) or p.field >= len(matches[occ - 1]):
        return ""
    v = matches[occ - 1][p.field]
    if p.segment == "MSH" and p.field <= 2:
        return v if (p.repetition or 1) == 1 and (p.component or 1) == 1 else ""
    if v == "":
        return ""
    reps = v.split("~")
    if (p.repetition or 1) > len(reps):
        return ""
    v = reps[(p.repetition or 1) - 1]
    if p.component is None:
        return v if ("^" in v or "&" in v) else _ref_unescape(v)
    comps = v.split("^")
    if p.component > len(comps):
        return ""
    v = comps[p.component - 1]
    if p.subcomponent is None:
        return v if "&" in v else _ref_unescape(v)
    subs = v.split("&")
    if p.subcomponent > len(subs):
        return ""
    return _ref_unescape(subs[p.subcomponent - 1])


@st.composite
def _path(draw: st.DrawFn) -> Path:
    comp = draw(st.one_of(st.none(), st.integers(1, 4)))
    return Path(
        draw(st.sampled_from(["MSH", "PID", "OBR", "NTE", "ZDS", "Z01", "AL1"])),
        draw(st.one_of(st.none(), st.integers(1, 3))),
        draw(st.integers(1, 8)),
        draw(st.one_of(st.none(), st.integers(1, 4))),
        comp,
        None if comp is None else draw(st.one_of(st.none(), st.integers(1, 4))),
    )


_PATHS = _path()


@settings(max_examples=200)
@given(_messages(), st.lists(_PATHS, min_size=1, max_size=8))
def test_get_agrees_with_eager_reference(
    case: tuple[str, list[str], bool], paths: list[Path]
) -> None:
    text, segs, _ = case
    m = HL7Message.parse(text)
    for p in paths:
        assert m.get_path(p) == _ref_get(segs, p), str(p)
        assert m.get(str(p)) == _ref_get(segs, p), str(p)


@settings(max_examples=150)
@given(_messages(), _PATHS.filter(lambda p: not p.is_msh_delimiter), st.text(max_size=20))
def test_set_then_get_returns_the_value(
    case: tuple[str, list[str], bool], p: Path, value: str
) -> None:
    if p.segment == "MSH" and p.field in (9, 10, 11, 12) and not value:
        return  # blanking a required MSH field makes the message unparseable by design
    m = HL7Message.parse(case[0])
    m.set(str(p), value)
    assert m.get(str(p)) == value
    assert HL7Message.parse(m.encode()).get(str(p)) == value

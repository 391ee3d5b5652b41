"""The fast DICOM encoder/decoder and C-FIND command set agree with pydicom and pynetdicom."""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import decode, encode
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from channels.dicom_mwl.identifier import QueryElement, from_bytes, from_dataset
from engine.dicom.decode import DecodeError, decode_elements
from engine.dicom.encode import Element, encode_elements, keyword_tag
from engine.dicom.find import command_set, p_data

TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x17F,
                                      exclude_characters="\\^="), max_size=12)
ASCII = st.text(alphabet="ABCDEFGHIJ0123456789 ", max_size=10)
SIMPLE: dict[str, st.SearchStrategy[Any]] = {
    "PatientName": st.builds(lambda f, g: f"{f}^{g}" if g else f, TEXT, TEXT),
    "PatientID": TEXT,
    "AccessionNumber": ASCII,
    "PatientSex": st.sampled_from(["M", "F", "O", ""]),
    "PatientBirthDate": st.sampled_from(["19800214", ""]),
    "StudyInstanceUID": st.sampled_from(["1.2.3", "1.2.840.10008.5.1.4.31", ""]),
    "RequestedProcedureDescription": TEXT,
    "PatientComments": TEXT,
    "PatientWeight": st.sampled_from(["70.5", "8", ""]),
    "Modality": st.sampled_from(["CT", "MR"]),
    "ScheduledStationAETitle": st.lists(st.sampled_from(["CT1", "MR22", "AB45"]), max_size=3),
    "ScheduledProcedureStepStartTime": st.sampled_from(["083000", "0800", "235959.123"]),
    "PregnancyStatus": st.sampled_from([1, 4]),
}
flat_items = st.fixed_dictionaries({}, optional=SIMPLE)
items = st.builds(
    lambda top, steps: {**top, **({"ScheduledProcedureStepSequence": steps} if steps else {})},
    flat_items, st.lists(flat_items, max_size=2),
)


def _encodable(item: dict[str, Any], codec: str) -> bool:
    try:
        json.dumps(item, ensure_ascii=False).encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def to_elements(item: dict[str, Any]) -> list[Element]:
    out: list[Element] = []
    for keyword, value in item.items():
        known = keyword_tag(keyword)
        assert known is not None
        tag, vr = known
        out.append((tag, vr, [to_elements(s) for s in value] if vr == "SQ" else value))
    return sorted(out, key=lambda e: e[0])


def to_dataset(item: dict[str, Any], charset: str) -> Dataset:
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    for keyword, value in item.items():
        if keyword == "ScheduledProcedureStepSequence":
            ds.ScheduledProcedureStepSequence = Sequence([to_dataset(s, "") for s in value])
        else:
            setattr(ds, keyword, value)
    return ds


@settings(max_examples=300, deadline=None)
@given(item=items, implicit=st.booleans(),
       charset=st.sampled_from([("ISO_IR 100", "latin_1"), ("ISO_IR 192", "utf_8")]))
def test_encoder_writes_the_same_bytes_as_pydicom(item: dict[str, Any], implicit: bool,
                                                  charset: tuple[str, str]) -> None:
    term, codec = charset
    assume(_encodable(item, codec))
    elements = [(0x00080005, "CS", term), *to_elements(item)]
    ours = encode_elements(elements, implicit=implicit, codec=codec)
    assert ours == encode(to_dataset(item, term), implicit, True)


def _stripped(elements: tuple[QueryElement, ...]) -> list[Any]:
    return [(tag, vr, [_stripped(i) for i in value] if isinstance(value, tuple)
             else value.strip()) for tag, _kw, vr, value in elements]


@settings(max_examples=200, deadline=None)
@given(item=items, implicit=st.booleans(), undefined=st.booleans(),
       charset=st.sampled_from(["ISO_IR 100", "ISO_IR 192"]))
def test_lean_decoder_reads_what_pydicom_reads(item: dict[str, Any], implicit: bool,
                                              undefined: bool, charset: str) -> None:
    assume(_encodable(item, "latin_1" if charset == "ISO_IR 100" else "utf_8"))
    ds = to_dataset(item, charset)
    if "ScheduledProcedureStepSequence" in ds:
        ds["ScheduledProcedureStepSequence"].is_undefined_length = undefined
        for sub in ds.ScheduledProcedureStepSequence:
            sub.is_undefined_length_sequence_item = undefined
    data = encode(ds, implicit, True)
    assert data is not None
    reference = from_dataset(decode(BytesIO(data), implicit, True, False))
    assert _stripped(from_bytes(data, implicit=implicit)) == _stripped(reference)


def test_decoder_refuses_truncated_data() -> None:
    data = encode_elements([(0x00100010, "PN", "DOE^JOHN")])
    with pytest.raises(DecodeError):
        decode_elements(data[:-3])
    with pytest.raises(DecodeError):
        decode_elements(data[:5])


@pytest.mark.parametrize("status", [0xFF00, 0x0000, 0xFE00, 0xC001])
def test_command_set_is_byte_identical_to_pynetdicom(status: int) -> None:
    rsp = C_FIND()
    rsp.MessageIDBeingRespondedTo = 7
    rsp.AffectedSOPClassUID = ModalityWorklistInformationFind
    rsp.Status = status
    pending = status == 0xFF00
    if pending:
        rsp.Identifier = BytesIO(b"\x10\x00\x10\x00\x00\x00\x00\x00")
    msg = C_FIND_RSP()
    msg.primitive_to_message(rsp)
    expected = encode(msg.command_set, True, True)
    assert command_set(str(ModalityWorklistInformationFind), 7, status,
                       has_dataset=pending) == expected


def test_error_comment_is_carried_in_the_command_set() -> None:
    data = command_set("1.2.3", 1, 0xC001, has_dataset=False, error_comment="timed out")
    decoded = decode(BytesIO(data), True, True, False)
    assert (decoded.Status, decoded.ErrorComment) == (0xC001, "timed out")
    assert decoded.CommandGroupLength == len(data) - 12


def test_a_message_that_fits_travels_as_two_pdvs_of_one_pdu() -> None:
    (pdu,) = p_data(1, b"C" * 10, b"D" * 20, max_pdu=42)
    assert pdu.presentation_data_value_list == [(1, b"\x03" + b"C" * 10),
                                                (1, b"\x02" + b"D" * 20)]
    (alone,) = p_data(1, b"C" * 10, None, max_pdu=16)
    assert alone.presentation_data_value_list == [(1, b"\x03" + b"C" * 10)]


def test_messages_larger_than_the_peer_pdu_are_fragmented_in_order() -> None:
    pdus = list(p_data(3, b"C" * 10, b"D" * 25, max_pdu=16))  # 10 bytes of data per PDV
    pdvs = [p.presentation_data_value_list[0] for p in pdus]
    assert [ctx for ctx, _ in pdvs] == [3, 3, 3, 3]
    assert [v[:1] for _, v in pdvs] == [b"\x03", b"\x00", b"\x00", b"\x02"]
    assert b"".join(v[1:] for _, v in pdvs[1:]) == b"D" * 25

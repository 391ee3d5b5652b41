"""Worklist responses: only what was asked for, in the right structure and character set."""

from __future__ import annotations

import codecs
from io import BytesIO
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode

from channels.dicom_mwl.response import ReturnKeys, choose_charset, encode_response

ITEM: dict[str, Any] = {
    "SpecificCharacterSet": "ISO_IR 192",
    "PatientName": "Müller^Anna", "PatientID": "P1", "AccessionNumber": "A1",
    "StudyInstanceUID": "1.2.3", "RequestedProcedureDescription": "CT HEAD",
    "ScheduledProcedureStepSequence": [{
        "Modality": "CT", "ScheduledStationAETitle": ["CT1", "CT2"],
        "ScheduledProcedureStepStartDate": "20261122", "ScheduledProcedureStepID": "S1",
        "ScheduledProtocolCodeSequence": [{"CodeValue": "P1", "CodingSchemeDesignator": "99X",
                                           "CodeMeaning": "Head"}],
    }],
}


def query(*top: str, sps: list[str] | None = None, **values: str) -> Dataset:
    ds = Dataset()
    for keyword in top:
        setattr(ds, keyword, values.get(keyword, ""))
    if sps is not None:
        item = Dataset()
        for keyword in sps:
            setattr(item, keyword, "")
        ds.ScheduledProcedureStepSequence = [item] if sps else []
    return ds


def answer(item: dict[str, Any], ds: Dataset, implicit: bool = True) -> Dataset:
    data = encode_response(item, ReturnKeys.from_identifier(ds), implicit=implicit)
    return decode(BytesIO(data), implicit, True, False)


def test_only_requested_attributes_are_returned_and_missing_ones_empty() -> None:
    rsp = answer(ITEM, query("PatientID", "AccessionNumber", "PatientBirthDate"))
    assert [e.keyword for e in rsp] == ["AccessionNumber", "PatientID", "PatientBirthDate"]
    assert (rsp.PatientID, rsp.AccessionNumber, rsp.PatientBirthDate) == ("P1", "A1", "")
    assert "PatientName" not in rsp and "StudyInstanceUID" not in rsp


def test_requested_sps_keys_come_back_inside_one_sequence_item() -> None:
    rsp = answer(ITEM, query("AccessionNumber", sps=["Modality", "ScheduledStationAETitle",
                                                     "ScheduledProcedureStepStatus"]))
    (step,) = rsp.ScheduledProcedureStepSequence
    assert [e.keyword for e in step] == ["Modality", "ScheduledStationAETitle",
                                         "ScheduledProcedureStepStatus"]
    assert step.Modality == "CT"
    assert list(step.ScheduledStationAETitle) == ["CT1", "CT2"]


def test_empty_sps_sequence_in_the_query_returns_the_whole_step() -> None:
    for ds in (query("AccessionNumber", sps=[]), query("AccessionNumber", sps=["Modality"])):
        rsp = answer(ITEM, ds)
        assert len(rsp.ScheduledProcedureStepSequence) == 1
    (step,) = answer(ITEM, query("AccessionNumber", sps=[])).ScheduledProcedureStepSequence
    assert step.ScheduledProcedureStepID == "S1"
    assert step.ScheduledProtocolCodeSequence[0].CodeMeaning == "Head"


@pytest.mark.parametrize("implicit", [True, False])
def test_non_ascii_names_are_sent_in_the_stored_character_set(implicit: bool) -> None:
    rsp = answer(ITEM, query("PatientName"), implicit=implicit)
    assert rsp.SpecificCharacterSet == "ISO_IR 192"
    assert str(rsp.PatientName) == "Müller^Anna"


def test_latin1_item_is_answered_in_latin1() -> None:
    rsp = answer({**ITEM, "SpecificCharacterSet": "ISO_IR 100"}, query("PatientName"))
    assert rsp.SpecificCharacterSet == "ISO_IR 100"
    assert str(rsp.PatientName) == "Müller^Anna"


def test_ascii_only_answer_carries_no_character_set_unless_asked() -> None:
    rsp = answer(ITEM, query("PatientID"))
    assert "SpecificCharacterSet" not in rsp
    asked = query("PatientID")
    asked.SpecificCharacterSet = "ISO_IR 100"
    assert answer(ITEM, asked).SpecificCharacterSet == "ISO_IR 192"


@pytest.mark.parametrize(
    ("texts", "stored", "expected"),
    [
        (["DOE^JOHN"], "ISO_IR 192", ("", "ascii")),
        (["Müller"], "", ("ISO_IR 100", "latin_1")),
        (["Müller"], "ISO_IR 192", ("ISO_IR 192", "utf_8")),
        (["Müller"], "ISO_IR 100", ("ISO_IR 100", "latin_1")),
        (["Łukasz"], "ISO_IR 100", ("ISO_IR 192", "utf_8")),
        (["山田^太郎"], "", ("ISO_IR 192", "utf_8")),
        (["Müller"], "ISO 2022 IR 87", ("ISO_IR 100", "latin_1")),
    ],
)
def test_character_set_is_the_stored_one_if_it_fits_else_latin1_else_utf8(
    texts: list[str], stored: str, expected: tuple[str, str]
) -> None:
    term, codec = choose_charset(texts, stored)
    assert (term, codecs.lookup(codec).name) == (expected[0], codecs.lookup(expected[1]).name)

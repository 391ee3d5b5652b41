"""Record paths (dotted keys, 0-based indexes) and the pydicom bridge."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms import load_mapping
from transforms.dicom_records import dataset_from_record, record_from_dataset, split_sequence
from transforms.records import (
    RecordPathError,
    format_record_path,
    get_in,
    parse_record_path,
    set_in,
)

from .conftest import ORM, REPO


def test_parse_and_format() -> None:
    assert parse_record_path("A[0].B[12].C") == ("A", 0, "B", 12, "C")
    assert format_record_path(("A", 0, "B")) == "A[0].B"


@pytest.mark.parametrize("bad", ["", "A.", ".A", "A[x]", "A[-1]", "1A", "A..B", "A[0]B",
                                 "A[10000]", "A-B"])
def test_bad_paths(bad: str) -> None:
    with pytest.raises(RecordPathError):
        parse_record_path(bad)


def test_get_in_missing_is_empty_text() -> None:
    data = {"A": [{"B": "x"}], "C": "text"}
    assert get_in(data, ("A", 0, "B")) == "x"
    assert get_in(data, ("A", 1, "B")) == ""
    assert get_in(data, ("C", "D")) == ""
    assert get_in(data, ("C", 0)) == ""


def test_set_in_creates_dicts_and_list_items() -> None:
    data: dict[str, Any] = {}
    set_in(data, ("Seq", 1, "Code", 0, "V"), "x")
    set_in(data, ("Seq", 0, "Name"), "y")
    assert data == {"Seq": [{"Name": "y"}, {"Code": [{"V": "x"}]}]}


def test_set_in_refuses_to_overwrite_a_value_with_a_container() -> None:
    data: dict[str, Any] = {"A": "text"}
    with pytest.raises(TypeError, match="A already holds a str"):
        set_in(data, ("A", "B"), "x")


_keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
_paths = st.lists(st.one_of(_keys, st.integers(0, 5)), min_size=1, max_size=5).filter(
    lambda p: isinstance(p[0], str)).map(tuple)


@given(_paths)
def test_paths_round_trip_and_set_then_get(path: tuple[str | int, ...]) -> None:
    assert parse_record_path(format_record_path(path)) == path
    data: dict[str, Any] = {}
    set_in(data, path, "v")
    assert get_in(data, path) == "v"


def test_worklist_record_becomes_a_dataset_and_back() -> None:
    mapping = load_mapping(REPO / "mappings" / "order_to_worklist.yaml")
    record = mapping.run(ORM).record
    ds = dataset_from_record(record)
    assert ds.PatientName == "TESTPATIENT^ALICE^M"
    assert ds.ScheduledProcedureStepSequence[0].Modality == "CT"
    assert all(not elem.keyword.startswith("_") for elem in ds)
    back = record_from_dataset(ds)
    assert back == {k: v for k, v in record.items() if not k.startswith("_")}


def test_dataset_from_record_refuses_unknown_keywords_and_shapes() -> None:
    with pytest.raises(KeyError, match="'PatientsName' is not a DICOM keyword"):
        dataset_from_record({"PatientsName": "X"})
    with pytest.raises(TypeError, match="is a sequence"):
        dataset_from_record({"ScheduledProcedureStepSequence": "X"})
    with pytest.raises(TypeError, match="is not a sequence"):
        dataset_from_record({"PatientName": [{"A": "B"}]})
    ds = dataset_from_record({"ScheduledStationAETitle": ["CT1", "CT2"]})
    assert list(ds.ScheduledStationAETitle) == ["CT1", "CT2"]


def test_split_sequence_gives_one_worklist_item_per_step() -> None:
    mapping = load_mapping(REPO / "mappings" / "order_to_worklist.yaml")
    message = ORM.rstrip("\r") + ("\rORC|NW|PLC9|FIL9||SC\rOBR|2|PLC9|FIL9|USABD^US^L|||||||||||"
                                  "|||ACC9|RP9|SPS9||||RUS\r")
    items = split_sequence(mapping.run(message).record)
    assert [i["ScheduledProcedureStepSequence"][0]["ScheduledProcedureStepID"] for i in items] \
        == ["SPS0001", "SPS9"]
    assert all(i["PatientID"] == "PAT10001" and "_order" not in i for i in items)
    assert split_sequence({"PatientID": "P"}) == []

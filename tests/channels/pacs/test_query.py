"""Study-level identifiers and answers, without a network."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from channels.pacs import RETURN_KEYS, date_windows, study_identifier, study_record


def test_identifier_asks_every_return_key_at_study_level() -> None:
    ds = study_identifier(dt.date(2024, 1, 1), dt.date(2024, 1, 3))
    assert ds.QueryRetrieveLevel == "STUDY"
    assert ds.StudyDate == "20240101-20240103"
    assert all(k in ds for k in RETURN_KEYS)
    assert "IssuerOfAccessionNumberSequence" not in ds


def test_single_day_is_queried_without_a_range() -> None:
    assert study_identifier(dt.date(2024, 1, 1), dt.date(2024, 1, 1)).StudyDate == "20240101"


def test_answer_becomes_plain_values() -> None:
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.ModalitiesInStudy = ["CT", "SR"]
    ds.NumberOfStudyRelatedInstances = "12"
    item = Dataset()
    item.LocalNamespaceEntityID = "RIS1"
    ds.IssuerOfAccessionNumberSequence = [item]
    rec = study_record(ds)
    assert rec == {"PatientName": "Doe^Jane", "ModalitiesInStudy": ["CT", "SR"],
                   "NumberOfStudyRelatedInstances": 12, "IssuerOfAccessionNumber": "RIS1"}


def test_windows_reject_zero_days() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        date_windows(dt.date(2024, 1, 1), dt.date(2024, 1, 2), 0)


@given(st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2030, 1, 1)),
       st.integers(min_value=0, max_value=400), st.integers(min_value=1, max_value=40))
def test_windows_cover_the_range_exactly_once(start: dt.date, span: int, days: int) -> None:
    end = start + dt.timedelta(days=span)
    wins = date_windows(start, end, days)
    assert wins[0][0] == start and wins[-1][1] == end
    assert all((b - a).days < days for a, b in wins)
    assert all(wins[i][1] + dt.timedelta(days=1) == wins[i + 1][0] for i in range(len(wins) - 1))

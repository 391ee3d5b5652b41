"""Normalised views of the two sides: an order (a worklist row) and a PACS study.

An order is a worklist row as ``engine.store.worklist`` keeps it (``attributes`` holding
the MWL item, as a dict or its JSON text, plus ``sps_status``) or the bare MWL item. A study
is a study-level C-FIND answer as a keyword -> value dict (``channels.pacs``). Both are
normalised once, so pairing and comparing only touch plain strings and ints; the fields only
some pairs need (procedure codes, physicians, raw text for the encoding checks) are read
from ``raw`` (the item itself) when a pair is compared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from transforms.reconcile import normalise as n
from transforms.reconcile.rules import ReconcileRules


@dataclass(frozen=True, slots=True)
class Side:
    """Identity and demographics common to both sides, normalised."""

    ref: str              # stable reference: order "uid/sps_id", study uid, MPPS uid
    uid: str
    accession: str
    accession_raw: str
    accession_issuer: str
    pid: str
    pid_raw: str
    issuer: str
    name: tuple[str, ...]
    birth: str
    sex: str
    date: int | None
    raw: Mapping[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class OrderView(Side):
    modality: str
    status: str


@dataclass(frozen=True, slots=True)
class StudyView(Side):
    modalities: frozenset[str]
    instances: int | None
    request_accessions: frozenset[str]
    """Normalised accessions of the Request Attributes Sequence items (grouped studies)."""


def _attributes(row: Mapping[str, Any]) -> Mapping[str, Any]:
    attrs = row.get("attributes")
    if isinstance(attrs, str):
        decoded: Mapping[str, Any] = json.loads(attrs)
        return decoded
    if isinstance(attrs, Mapping):
        return attrs
    return row


def _first(seq: object) -> Mapping[str, Any]:
    if isinstance(seq, list) and seq and isinstance(seq[0], Mapping):
        return seq[0]
    return {}


@lru_cache(maxsize=64)
def _steps(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def _path(item: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    """``A.B`` -> ``item[A][0][B][0]`` (``{}`` when any step is missing)."""
    for keyword in _steps(path):
        item = _first(item.get(keyword))
        if not item:
            break
    return item


def code(item: Mapping[str, Any], sources: list[str]) -> tuple[str, str]:
    """(Code Value, Coding Scheme Designator) of the first code sequence in ``sources``
    that has a code value; ``("", "")`` when none has."""
    for source in sources:
        if not item.get(_steps(source)[0]):
            continue  # the common case: no such sequence at all
        found = _path(item, source)
        value = n.text(found.get("CodeValue") or found.get("LongCodeValue"))
        if value:
            return value, n.text(found.get("CodingSchemeDesignator"))
    return "", ""


def _request_accessions(item: Mapping[str, Any], case_insensitive: bool) -> frozenset[str]:
    seq = item.get("RequestAttributesSequence")
    if not isinstance(seq, list) or not seq:
        return frozenset()
    accs = (n.accession(r.get("AccessionNumber"), case_insensitive)
            for r in seq if isinstance(r, Mapping))
    return frozenset(a for a in accs if a)


def _acc_issuer(item: Mapping[str, Any]) -> str:
    flat = n.text(item.get("IssuerOfAccessionNumber"))
    if flat:
        return flat.upper()
    return n.text(_first(item.get("IssuerOfAccessionNumberSequence")).get(
        "LocalNamespaceEntityID")).upper()


def _common(item: Mapping[str, Any], rules: ReconcileRules) -> dict[str, Any]:
    cfg = rules.normalise
    acc = n.text(item.get("AccessionNumber"))
    return {
        "raw": item,
        "uid": n.text(item.get("StudyInstanceUID")),
        "accession": n.accession(acc, rules.accession.case_insensitive),
        "accession_raw": acc,
        "accession_issuer": _acc_issuer(item),
        "pid": n.patient_id(item.get("PatientID"), cfg),
        "pid_raw": n.text(item.get("PatientID")),
        "issuer": n.issuer(item.get("IssuerOfPatientID"), cfg),
        "name": n.person_name(item.get("PatientName"), cfg),
        "birth": n.birth_date(item.get("PatientBirthDate"), cfg),
        "sex": n.sex(item.get("PatientSex"), cfg),
    }


def _order_ref(uid: str, sps_id: str, accession: str) -> str:
    return f"{uid}/{sps_id}" if sps_id else uid or accession


def order_ref(row: Mapping[str, Any], rules: ReconcileRules) -> str:
    """``order_view(row, rules).ref`` without normalising the rest."""
    item = _attributes(row)
    sps = _first(item.get("ScheduledProcedureStepSequence"))
    return _order_ref(n.text(item.get("StudyInstanceUID")),
                      n.text(sps.get("ScheduledProcedureStepID") or row.get("sps_id")),
                      n.accession(item.get("AccessionNumber"),
                                  rules.accession.case_insensitive))


def study_ref(item: Mapping[str, Any], rules: ReconcileRules) -> str:
    """``study_view(item, rules).ref`` without normalising the rest."""
    return _study_ref(n.text(item.get("StudyInstanceUID")),
                      n.accession(item.get("AccessionNumber"),
                                  rules.accession.case_insensitive))


def _study_ref(uid: str, accession: str) -> str:
    return uid or f"acc:{accession}"


def order_view(row: Mapping[str, Any], rules: ReconcileRules) -> OrderView:
    item = _attributes(row)
    sps = _first(item.get("ScheduledProcedureStepSequence"))
    common = _common(item, rules)
    status = n.text(row.get("sps_status") or sps.get("ScheduledProcedureStepStatus")
                    or "SCHEDULED").upper()
    sps_id = n.text(sps.get("ScheduledProcedureStepID") or row.get("sps_id"))
    return OrderView(
        ref=_order_ref(common["uid"], sps_id, common["accession"]),
        date=n.date_ordinal(sps.get("ScheduledProcedureStepStartDate")),
        modality=n.modality(sps.get("Modality"), rules.normalise),
        status=status,
        **common,
    )


def study_view(item: Mapping[str, Any], rules: ReconcileRules) -> StudyView:
    common = _common(item, rules)
    raw_count = n.text(item.get("NumberOfStudyRelatedInstances"))
    mods = item.get("ModalitiesInStudy", item.get("Modality"))
    return StudyView(
        ref=_study_ref(common["uid"], common["accession"]),
        date=n.date_ordinal(item.get("StudyDate")),
        modalities=n.modalities(mods, rules.normalise),
        instances=int(raw_count) if raw_count.isdigit() else None,
        request_accessions=_request_accessions(item, rules.accession.case_insensitive),
        **common,
    )


def mpps_instance_count(record: Mapping[str, Any]) -> int:
    """Instances an MPPS reported: Referenced Image + Non-Image Composite SOP Instances of
    every Performed Series item (an explicit ``instance_count`` wins)."""
    if isinstance(record.get("instance_count"), int):
        return int(record["instance_count"])
    attrs = _attributes(record)
    total = 0
    for series in attrs.get("PerformedSeriesSequence") or []:
        if isinstance(series, Mapping):
            total += len(series.get("ReferencedImageSequence") or [])
            total += len(series.get("ReferencedNonImageCompositeSOPInstanceSequence") or [])
    return total

"""Helpers for the reconciliation end-to-end test: HL7 derived from the sample messages,
sent over MLLP with python-hl7's client; PACS studies stored in and removed from a real
Orthanc (DCMTK storescu, Orthanc's REST API); the engine's mismatch list read back."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hl7.client
from pydicom import dcmread

from tests.channels.pacs.conftest import Orthanc, make_instance, storescu
from tests.integration.conftest import sample
from tests.support.client import msa
from tests.support.peers import EngineProcess

TODAY = dt.date.today().strftime("%Y%m%d")
SAMPLE_DAY = b"20261122"  # the date the samples were written on
ISSUER = "GENHOSP"        # the hospital's issuer of patient IDs, as the orders carry it


def derive(name: str, replacements: Mapping[str, str] | None = None,
           encoding: str = "latin-1") -> bytes:
    """Sample ``name`` with its dates moved to today and each ``old -> new`` replaced.

    Every ``old`` must occur in the sample, so a sample edited later cannot silently turn
    the derived message back into the original."""
    text = sample(name).replace(SAMPLE_DAY, TODAY.encode()).decode(encoding)
    for old, new in (replacements or {}).items():
        if old not in text:
            raise AssertionError(f"{old!r} not in sample {name}")
        text = text.replace(old, new)
    return text.encode(encoding)


def send_all(engine: EngineProcess, *messages: bytes) -> None:
    """Send each message over one MLLP connection; each must be accepted (MSA-1 AA)."""
    port = engine.ports["mllp"]  # type: ignore[attr-defined]
    with hl7.client.MLLPClient("127.0.0.1", port) as client:
        for message in messages:
            ack: bytes = client.send_message(message)
            assert msa(ack)[1] == "AA", (message.split(b"\r", 1)[0], ack)


def store_study(peer: Orthanc, workdir: Path, *, study_uid: str, accession: str,
                patient_id: str, name: str, birth: str, sex: str, modality: str) -> None:
    """One image of a study dated today, stored in ``peer`` with storescu. The name may be
    non-ASCII (UTF-8, Specific Character Set ISO_IR 192, as modern modalities send)."""
    path = workdir / f"{study_uid}-{accession}.dcm"
    make_instance(path, study_uid=study_uid, accession=accession, patient_id=patient_id,
                  name="PLACEHOLDER", birth=birth, sex=sex, study_date=TODAY,
                  modality=modality)
    ds = dcmread(path)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = name
    ds.IssuerOfPatientID = ISSUER
    ds.save_as(path, enforce_file_format=True)
    storescu(peer, [path])


def _rest(peer: Orthanc, method: str, path: str, body: object = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{peer.http_port}{path}", data=data,
                                 method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


def delete_study(peer: Orthanc, accession: str) -> None:
    """Remove the study with ``accession`` from Orthanc (REST); it must be there."""
    ids = _rest(peer, "POST", "/tools/find",
                {"Level": "Study", "Query": {"AccessionNumber": accession}})
    assert len(ids) == 1, (accession, ids)
    _rest(peer, "DELETE", f"/studies/{ids[0]}")
    assert not _rest(peer, "POST", "/tools/find",
                     {"Level": "Study", "Query": {"AccessionNumber": accession}})


def reconcile(engine: EngineProcess, peer: Orthanc, calling_ae: str) -> str:
    """``radbridge reconcile`` against ``peer`` for today and the two days before."""
    engine.env["RADBRIDGE_PACS_CALLING_AET"] = calling_ae
    out = engine.cli("reconcile", "--days", "2", "--pacs-host", "127.0.0.1",
                     "--pacs-port", str(peer.port), "--pacs-aet", peer.ae)
    assert out.returncode == 0, out.stderr
    return out.stdout


def mismatches(engine: EngineProcess, status: str = "open") -> list[dict[str, Any]]:
    out = engine.cli("mismatches", "--status", status, "--json")
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    return rows


def flag_pairs(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """``(type, accession of the PACS study)`` for each mismatch row."""
    return {(m["type"], m["details"].get("study_accession", "")) for m in rows}


def worklist_item(engine: EngineProcess, accession: str) -> dict[str, Any]:
    """The worklist entry for ``accession`` as ``radbridge worklist show`` prints it."""
    out = engine.cli("worklist", "show", accession)
    assert out.returncode == 0, out.stderr
    item: dict[str, Any] = json.loads(out.stdout.split("--- HL7 messages ---")[0])
    return item


# -- the five-study scenario (shared by the CLI and the channel end-to-end tests) ------
UID = "1.2.826.0.1.3680043.10.1001."   # the samples' Study Instance UID root


def order_ids(n: str, control_ids: dict[str, str]) -> dict[str, str]:
    """Replacements that turn sample order 0001 (orm_o01_*_v231) into order ``n``."""
    ids = {f"{p}0001": f"{p}{n}" for p in ("PLC", "FIL", "ACC", "RP", "SPS")}
    return {**control_ids, **ids, f"{UID}1^": f"{UID}{int(n)}^"}


# Correct: the CT head order of sample orm_o01_nw_v231, patient PAT10001.
CORRECT_NW = derive("orm_o01_nw_v231.hl7")
# Typo: the MR knee order of sample omi_o23_nw_v251 (ACC0002, PAT10002).
TYPO_NW = derive("omi_o23_nw_v251.hl7", encoding="utf-8")
# Renamed: the chest order of sample orm_o01_nw_latin1 (ACC0003, PAT10003, MÜLLER^JÖRG),
# then an ADT^A08 (sample adt_a08_v231 moved to that patient, same birth date and sex)
# giving the family name SCHMIDT. After the normalisation of mappings/reconcile.yml (3
# components, accents and case folded) MULLER^JORG vs SCHMIDT^JORG still differ: family.
RENAMED_NW = derive("orm_o01_nw_latin1.hl7")
RENAME_A08 = derive("adt_a08_v231.hl7", {
    "MSG00005": "MSG00053", "|P|2.3.1\r": "|P|2.3.1||||||8859/1\r",
    "PAT10001": "PAT10003", "TESTPATIENT^ALICIA^M": "SCHMIDT^JÖRG", "19800214|F": "19620730|M",
})
# Cancelled: a second CT head order for PAT10001 (ACC0004), NW then CA (sample
# orm_o01_ca_v231: ORC-1 CA, ORC-5 CA -> SPS status CANCELED).
CANCELLED_NW = derive("orm_o01_nw_v231.hl7", order_ids("0004", {"MSG00001": "MSG00041"}))
CANCELLED_CA = derive("orm_o01_ca_v231.hl7", order_ids("0004", {"MSG00003": "MSG00043"}))
# The orphan's order, entered in the RIS after the (emergency) exam: the correction.
ORPHAN_NW = derive("orm_o01_nw_v231.hl7", order_ids("9999", {
    "MSG00001": "MSG00099", "PAT10001": "PAT77777", "TESTPATIENT^ALICE^M": "NOBODY^NEMO",
    "19800214|F": "19600101|M",
}))

ALICE = {"patient_id": "PAT10001", "name": "TESTPATIENT^ALICE^M", "birth": "19800214",
         "sex": "F"}
BOB = {"patient_id": "PAT10002", "name": "EXAMPLE^BOB^J", "birth": "19751103", "sex": "M"}
JORG = {"patient_id": "PAT10003", "birth": "19620730", "sex": "M"}
NEMO = {"patient_id": "PAT77777", "name": "NOBODY^NEMO", "birth": "19600101", "sex": "M"}

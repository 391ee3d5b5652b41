"""A real Orthanc PACS for the C-FIND tests: own config, free ports, tmp storage, stopped
after the module. Skips when Orthanc or storescu is not installed. Synthetic data only."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from tests.support.peers import free_port

SCU_AE = "RBRECON"
SC_CLASS = UID("1.2.840.10008.5.1.4.1.1.7")  # Secondary Capture Image Storage


@dataclass(frozen=True)
class Orthanc:
    host: str
    port: int
    http_port: int
    ae: str
    workdir: Path


def _wait_port(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"Orthanc did not listen on {port}")


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    binary = shutil.which("Orthanc")
    if binary is None or shutil.which("storescu") is None:
        pytest.skip("Orthanc or DCMTK storescu not installed")
    work = tmp_path_factory.mktemp("orthanc")
    port, http_port = free_port(), free_port()
    config = {
        "Name": "RB-RECON-TEST", "StorageDirectory": str(work / "db"),
        "IndexDirectory": str(work / "db"), "HttpPort": http_port, "DicomPort": port,
        "DicomAet": "ORTHANC", "DicomCheckCalledAet": False, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "DicomModalities": {"rb": [SCU_AE, "127.0.0.1", 11999]},
        "Plugins": [], "ConcurrentJobs": 1,
    }
    (work / "config.json").write_text(json.dumps(config))
    log = (work / "orthanc.log").open("wb")
    proc = subprocess.Popen([binary, str(work / "config.json")], stdout=log, stderr=log)
    try:
        _wait_port(port, proc, time.monotonic() + 20)
        yield Orthanc("127.0.0.1", port, http_port, "ORTHANC", work)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def make_instance(path: Path, *, study_uid: str, accession: str, patient_id: str,
                  name: str, birth: str, sex: str, study_date: str, modality: str) -> Path:
    """A tiny 2x2 Secondary Capture image with the given study-level attributes."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SC_CLASS
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = SC_CLASS, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
    ds.AccessionNumber, ds.PatientID, ds.PatientName = accession, patient_id, name
    ds.IssuerOfPatientID = "HOSPA"
    ds.PatientBirthDate, ds.PatientSex = birth, sex
    ds.StudyDate, ds.StudyTime, ds.Modality = study_date, "101500", modality
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = b"\x00\x01\x02\x03"
    ds.save_as(path, enforce_file_format=True)
    return path


def storescu(peer: Orthanc, files: list[Path]) -> None:
    subprocess.run(["storescu", "-aet", SCU_AE, "-aec", peer.ae, peer.host, str(peer.port),
                    *map(str, files)], check=True, timeout=30, capture_output=True)

"""A modality's MPPS over DICOM (pynetdicom SCU), for the end-to-end tests."""

from __future__ import annotations

from typing import Any

from pydicom.uid import generate_uid
from pynetdicom import AE

from channels.dicom_mpps.service import MPPS_SOP_CLASS


def mpps(port: int, *steps: tuple[str, Any], uid: str | None = None) -> list[int]:
    """N-CREATE / N-SET ``steps`` as AE CT1 on one association; the status codes."""
    ae = AE(ae_title="CT1")
    ae.add_requested_context(MPPS_SOP_CLASS)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADBRIDGE")
    assert assoc.is_established
    uid, codes = uid or generate_uid(), []
    try:
        for op, ds in steps:
            send = assoc.send_n_create if op == "create" else assoc.send_n_set
            status, _ = send(ds, MPPS_SOP_CLASS, uid)
            codes.append(int(status.Status))
    finally:
        assoc.release()
    return codes

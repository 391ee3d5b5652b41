"""Modality Performed Procedure Step (MPPS) SCP, served by the DICOM SCP beside the worklist.

- :mod:`~channels.dicom_mpps.machine` — the MPPS state machine (sans-I/O);
- :mod:`~channels.dicom_mpps.workflow` — one N-CREATE / N-SET applied in one transaction:
  the MPPS row and history, the worklist step status, HL7 status deliveries, events;
- :mod:`~channels.dicom_mpps.service` — the pynetdicom handlers (thread → loop bridge);
- :mod:`~channels.dicom_mpps.config` — its settings (``mpps:`` of ``dicom_mwl_scp``).
"""

"""DICOM plumbing shared by the DICOM channels (worklist, MPPS, PACS queries).

- :mod:`~engine.dicom.bridge` — pynetdicom handler threads → coroutines on the engine loop,
  with a timeout that becomes a DICOM failure status;
- :mod:`~engine.dicom.server` — the association server: TCP_NODELAY, fast C-FIND, clean stop;
- :mod:`~engine.dicom.service` — services an AE hosts (contexts + handlers);
- :mod:`~engine.dicom.scu` — TCP_NODELAY for one SCU association (no global patch);
- :mod:`~engine.dicom.find` / :mod:`~engine.dicom.encode` — the fast C-FIND response path;
- :mod:`~engine.dicom.phi` — pynetdicom's identifier logging switched off;
- :mod:`~engine.dicom.values` / :mod:`~engine.dicom.items` — value normalisation and
  Dataset ↔ dict conversion (sans-I/O).
"""

"""The PACS side of reconciliation: a study-level C-FIND SCU (Study Root, IHE RAD-11).

``query`` builds identifiers and reads answers (no sockets); ``find`` runs the association
with pynetdicom (TCP_NODELAY on). The runtime calls ``find_studies`` in a worker thread (or
``afind_studies``), stores the answers with ``engine.store.reconcile.replace_studies`` and
runs ``transforms.reconcile.reconcile`` on them.
"""

from channels.pacs.find import (
    PACSFindConfig,
    PACSQueryError,
    afind_by_keys,
    afind_studies,
    find_by_keys,
    find_studies,
)
from channels.pacs.query import RETURN_KEYS, date_windows, study_identifier, study_record

__all__ = [
    "RETURN_KEYS",
    "PACSFindConfig",
    "PACSQueryError",
    "afind_by_keys",
    "afind_studies",
    "date_windows",
    "find_by_keys",
    "find_studies",
    "study_identifier",
    "study_record",
]

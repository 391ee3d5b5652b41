"""Patient merges for reconciliation: ``merged_patients`` (ADT^A40) as ``reconcile(merged=)``.

``load_merges(conn)`` returns old patient ID -> surviving patient ID. The table keys merges
by (ID, issuer) while reconciliation compares IDs, so an old ID merged under two issuers into
two different survivors is ambiguous and left out: the study is then reported as it would be
without merge knowledge (a patient ID mismatch or different patient), never remapped to a
guess. Chains (A->B, then B->C) are resolved by ``reconcile`` itself.
"""

from __future__ import annotations

import sqlite3


def load_merges(conn: sqlite3.Connection) -> dict[str, str]:
    """Every unambiguous merge in ``merged_patients``: old ID -> surviving ID."""
    survivors: dict[str, set[str]] = {}
    for old, new in conn.execute(
            "SELECT patient_id, new_patient_id FROM merged_patients"
            " WHERE patient_id != '' AND new_patient_id != ''"):
        survivors.setdefault(str(old), set()).add(str(new))
    return {old: next(iter(new)) for old, new in sorted(survivors.items()) if len(new) == 1}

"""Worklist side tables the order lifecycle reads and writes (``worklist_patients.sql``):
patient merges (ADT^A40), which messages created or changed a step, and lookups the
lifecycle needs (the patient a study belongs to, the steps of a study or a patient).
Called by ``transforms.worklist`` inside the ingest transaction."""

from __future__ import annotations

import sqlite3
import time


def merged_into(conn: sqlite3.Connection, pid: str, issuer: str) -> str | None:
    """The surviving patient ID ``pid`` (under ``issuer``) was merged into, if any."""
    row = conn.execute(
        "SELECT new_patient_id FROM merged_patients WHERE patient_id = ? AND issuer = ?",
        (pid, issuer)).fetchone()
    return None if row is None else str(row[0])


def record_merge(conn: sqlite3.Connection, old: tuple[str, str], new: tuple[str, str],
                 message_id: int, now: float | None = None) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO merged_patients (patient_id, issuer, new_patient_id,"
        " new_issuer, merged_at, message_id) VALUES (?,?,?,?,?,?)",
        (*old, *new, time.time() if now is None else now, message_id))


def study_patient(conn: sqlite3.Connection, study_uid: str) -> tuple[str, str] | None:
    """(patient ID, issuer) of the steps already scheduled for ``study_uid``."""
    row = conn.execute(
        "SELECT patient_id, issuer_of_patient_id FROM worklist WHERE study_instance_uid = ?"
        " LIMIT 1", (study_uid,)).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def patient_steps(conn: sqlite3.Connection, pid: str, issuer: str) -> list[tuple[str, str]]:
    """(Study Instance UID, SPS ID) of every step of a patient."""
    return [(str(r[0]), str(r[1])) for r in conn.execute(
        "SELECT study_instance_uid, sps_id FROM worklist"
        " WHERE patient_id = ? AND issuer_of_patient_id = ?", (pid, issuer))]


def study_step_ids(conn: sqlite3.Connection, study_uid: str) -> set[str]:
    return {str(r[0]) for r in conn.execute(
        "SELECT sps_id FROM worklist WHERE study_instance_uid = ?", (study_uid,))}


def link_message(conn: sqlite3.Connection, study_uid: str, sps_id: str,
                 message_id: int) -> None:
    """Remember that ``message_id`` created or changed the step."""
    conn.execute(
        "INSERT OR IGNORE INTO worklist_messages (study_instance_uid, sps_id, message_id)"
        " VALUES (?, ?, ?)", (study_uid, sps_id, message_id))


def message_origin(conn: sqlite3.Connection, message_id: int) -> tuple[str, str]:
    """(channel, message type) of a stored message (("", "") when unknown)."""
    row = conn.execute("SELECT channel, message_type FROM messages WHERE id = ?",
                       (message_id,)).fetchone()
    return ("", "") if row is None else (str(row[0]), str(row[1]))

-- Patients merged by ADT^A40: later messages using the old ID follow the merged-patient
-- policy (transforms/worklist.py).
CREATE TABLE IF NOT EXISTS merged_patients (
    patient_id     TEXT NOT NULL,
    issuer         TEXT NOT NULL,
    new_patient_id TEXT NOT NULL,
    new_issuer     TEXT NOT NULL,
    merged_at      REAL NOT NULL,
    message_id     INTEGER,
    PRIMARY KEY (patient_id, issuer)
);

-- Every message that created or changed a step, for `radbridge worklist show`.
CREATE TABLE IF NOT EXISTS worklist_messages (
    study_instance_uid TEXT    NOT NULL,
    sps_id             TEXT    NOT NULL,
    message_id         INTEGER NOT NULL,
    PRIMARY KEY (study_instance_uid, sps_id, message_id)
) WITHOUT ROWID;

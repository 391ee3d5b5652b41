-- Modality worklist: one row per scheduled procedure step (engine/store/worklist.py).
-- Every matching key of the MWL SCP has its own column, derived from `attributes` on write,
-- so C-FIND is answered by index lookups. Person names are also kept in a normalised form
-- (accents removed, upper case) for case- and accent-insensitive matching. Dates are
-- YYYYMMDD, times HHMMSS.ffffff, `sps_start` is the sortable date+time.
CREATE TABLE IF NOT EXISTS worklist (
    id                        INTEGER PRIMARY KEY,
    study_instance_uid        TEXT    NOT NULL,
    sps_id                    TEXT    NOT NULL,
    patient_id                TEXT    NOT NULL DEFAULT '',
    issuer_of_patient_id      TEXT    NOT NULL DEFAULT '',
    patient_name              TEXT    NOT NULL DEFAULT '',
    patient_name_norm         TEXT    NOT NULL DEFAULT '',
    birth_date                TEXT    NOT NULL DEFAULT '',
    sex                       TEXT    NOT NULL DEFAULT '',
    accession_number          TEXT    NOT NULL DEFAULT '',
    requested_procedure_id    TEXT    NOT NULL DEFAULT '',
    modality                  TEXT    NOT NULL DEFAULT '',
    scheduled_station_aet     TEXT    NOT NULL DEFAULT '',  -- as stored, values joined by '\'
    scheduled_station_name    TEXT    NOT NULL DEFAULT '',
    sps_start_date            TEXT    NOT NULL DEFAULT '',
    sps_start_time            TEXT    NOT NULL DEFAULT '',
    sps_start                 TEXT    NOT NULL DEFAULT '',
    sps_status                TEXT    NOT NULL DEFAULT 'SCHEDULED',
    performing_physician      TEXT    NOT NULL DEFAULT '',
    performing_physician_norm TEXT    NOT NULL DEFAULT '',
    attributes                TEXT    NOT NULL,             -- the item as JSON (keyword → value)
    specific_character_set    TEXT    NOT NULL DEFAULT '',
    message_id                INTEGER,                      -- the order message it came from
    created_at                REAL    NOT NULL,
    updated_at                REAL    NOT NULL,
    UNIQUE (study_instance_uid, sps_id)
);
CREATE INDEX IF NOT EXISTS worklist_accession ON worklist (accession_number);
CREATE INDEX IF NOT EXISTS worklist_patient   ON worklist (patient_id, issuer_of_patient_id);
CREATE INDEX IF NOT EXISTS worklist_name      ON worklist (patient_name_norm);
CREATE INDEX IF NOT EXISTS worklist_rp_id     ON worklist (requested_procedure_id);
CREATE INDEX IF NOT EXISTS worklist_sps_id    ON worklist (sps_id);
CREATE INDEX IF NOT EXISTS worklist_start     ON worklist (sps_start);
CREATE INDEX IF NOT EXISTS worklist_modality  ON worklist (modality, sps_start);
CREATE INDEX IF NOT EXISTS worklist_status    ON worklist (sps_status, sps_start);
CREATE INDEX IF NOT EXISTS worklist_message   ON worklist (message_id);

-- Scheduled Station AE Title is multi-valued: each value is a row here, so a query for one
-- AE title finds every step that lists it (set semantics). `sps_start` is repeated so that
-- "my station, today" is one index range scan.
CREATE TABLE IF NOT EXISTS worklist_station (
    ae_title  TEXT    NOT NULL,
    sps_start TEXT    NOT NULL,
    step_id   INTEGER NOT NULL REFERENCES worklist (id) ON DELETE CASCADE,
    PRIMARY KEY (ae_title, sps_start, step_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS worklist_station_step ON worklist_station (step_id);

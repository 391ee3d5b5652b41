-- Reconciliation (engine/store/reconcile.py, transforms/reconcile): the last PACS answers
-- (one row per study, replaced on every C-FIND pass) and the mismatches found, de-duplicated
-- on `key` across passes. status: open | acknowledged | resolved | ignored; `who`/`why`
-- record the last person (or 'reconciler' for auto-resolution) who changed it.
CREATE TABLE IF NOT EXISTS pacs_studies (
    study_instance_uid     TEXT    PRIMARY KEY,
    source                 TEXT    NOT NULL DEFAULT '',  -- the PACS (called AE title)
    accession_number       TEXT    NOT NULL DEFAULT '',
    patient_id             TEXT    NOT NULL DEFAULT '',
    issuer_of_patient_id   TEXT    NOT NULL DEFAULT '',
    study_date             TEXT    NOT NULL DEFAULT '',
    modalities             TEXT    NOT NULL DEFAULT '',  -- ModalitiesInStudy joined by '\'
    instances              INTEGER,
    attributes             TEXT    NOT NULL,             -- the C-FIND answer as JSON
    fetched_at             REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS pacs_studies_accession ON pacs_studies (accession_number);
CREATE INDEX IF NOT EXISTS pacs_studies_patient   ON pacs_studies (patient_id);
CREATE INDEX IF NOT EXISTS pacs_studies_date      ON pacs_studies (study_date);

CREATE TABLE IF NOT EXISTS mismatches (
    id           INTEGER PRIMARY KEY,
    key          TEXT    NOT NULL UNIQUE,
    type         TEXT    NOT NULL,
    severity     TEXT    NOT NULL,
    order_ref    TEXT,                      -- worklist "study_uid/sps_id"
    study_ref    TEXT,                      -- PACS Study Instance UID or "mpps:<uid>"
    details      TEXT    NOT NULL,          -- JSON: values on both sides and context
    explanation  TEXT    NOT NULL,
    first_seen   REAL    NOT NULL,
    last_seen    REAL    NOT NULL,
    status       TEXT    NOT NULL DEFAULT 'open'
                 CHECK (status IN ('open', 'acknowledged', 'resolved', 'ignored')),
    status_at    REAL,
    who          TEXT    NOT NULL DEFAULT '',
    why          TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS mismatches_status ON mismatches (status, severity, last_seen);
CREATE INDEX IF NOT EXISTS mismatches_order  ON mismatches (order_ref);
CREATE INDEX IF NOT EXISTS mismatches_study  ON mismatches (study_ref);

-- What the reconciler keeps between passes (e.g. `mpps_after`: the MPPS high-water mark,
-- so each ended MPPS triggers one check of its study, also across restarts).
CREATE TABLE IF NOT EXISTS reconcile_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mpps_updated ON mpps (updated_at);

-- Remembered decisions (engine/store/reconcile_decisions.py): a person's ignore/acknowledge
-- applied to later mismatches of the same type with the same differing values.
CREATE TABLE IF NOT EXISTS mismatch_decisions (
    id          INTEGER PRIMARY KEY,
    type        TEXT    NOT NULL,
    order_value TEXT    NOT NULL DEFAULT '',
    study_value TEXT    NOT NULL DEFAULT '',
    status      TEXT    NOT NULL CHECK (status IN ('acknowledged', 'ignored')),
    who         TEXT    NOT NULL DEFAULT '',
    why         TEXT    NOT NULL DEFAULT '',
    created_at  REAL    NOT NULL,
    source_id   INTEGER,                -- the mismatch it was decided on
    applied     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (type, order_value, study_value)
);

-- Modality Performed Procedure Steps (engine/store/mpps.py): one row per MPPS instance,
-- every N-CREATE / N-SET kept in mpps_events, and the worklist steps each one performed.
-- `unscheduled` = 1: the MPPS matched no scheduled step; the reconciler reads these rows
-- (and sets `reconciled_at` when a person or a rule has dealt with them).
CREATE TABLE IF NOT EXISTS mpps (
    sop_instance_uid       TEXT    PRIMARY KEY,
    channel                TEXT    NOT NULL,
    status                 TEXT    NOT NULL,          -- IN PROGRESS | COMPLETED | DISCONTINUED
    pps_id                 TEXT    NOT NULL DEFAULT '',
    study_instance_uid     TEXT    NOT NULL DEFAULT '', -- of the first scheduled step item
    sps_id                 TEXT    NOT NULL DEFAULT '',
    accession_number       TEXT    NOT NULL DEFAULT '',
    patient_id             TEXT    NOT NULL DEFAULT '',
    modality               TEXT    NOT NULL DEFAULT '',
    station_aet            TEXT    NOT NULL DEFAULT '', -- Performed Station AE Title
    calling_aet            TEXT    NOT NULL DEFAULT '',
    unscheduled            INTEGER NOT NULL DEFAULT 0,
    reconciled_at          REAL,
    discontinuation_reason TEXT    NOT NULL DEFAULT '', -- (0040,0281) as JSON items
    attributes             TEXT    NOT NULL,            -- N-CREATE merged with every N-SET
    created_at             REAL    NOT NULL,
    updated_at             REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS mpps_study       ON mpps (study_instance_uid);
CREATE INDEX IF NOT EXISTS mpps_accession   ON mpps (accession_number);
CREATE INDEX IF NOT EXISTS mpps_unscheduled ON mpps (unscheduled, reconciled_at)
    WHERE unscheduled = 1;

CREATE TABLE IF NOT EXISTS mpps_events (
    id               INTEGER PRIMARY KEY,
    sop_instance_uid TEXT    NOT NULL REFERENCES mpps (sop_instance_uid) ON DELETE CASCADE,
    operation        TEXT    NOT NULL,               -- N-CREATE | N-SET
    status_before    TEXT    NOT NULL DEFAULT '',
    status_after     TEXT    NOT NULL,
    message_id       INTEGER,                        -- the messages row of this operation
    calling_aet      TEXT    NOT NULL DEFAULT '',
    changes          TEXT    NOT NULL,               -- the attribute list received, JSON
    received_at      REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS mpps_events_instance ON mpps_events (sop_instance_uid, id);

-- The scheduled steps an MPPS performed (Scheduled Step Attributes Sequence, linked).
CREATE TABLE IF NOT EXISTS mpps_steps (
    sop_instance_uid   TEXT NOT NULL REFERENCES mpps (sop_instance_uid) ON DELETE CASCADE,
    study_instance_uid TEXT NOT NULL,
    sps_id             TEXT NOT NULL,
    linked_by          TEXT NOT NULL,                -- study_sps | accession
    PRIMARY KEY (sop_instance_uid, study_instance_uid, sps_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mpps_steps_step ON mpps_steps (study_instance_uid, sps_id);

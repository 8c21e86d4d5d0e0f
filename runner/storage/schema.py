"""The tables: the journal of every study and the control plane beside it."""

from __future__ import annotations

SCHEMA_LOCK = 0x74756E65  # "tune": serialises CREATE TABLE IF NOT EXISTS across processes

# Raise with every change to SCHEMA. A database at this version is left alone: the
# DDL below (ALTER TABLE takes an ACCESS EXCLUSIVE lock even when there is nothing
# to do) runs once per database and version, not in every process that opens it,
# where it blocked, and could deadlock with, other processes' reads.
SCHEMA_VERSION = 16


def is_current(conn) -> bool:
    """True if this database's tables are at SCHEMA_VERSION (no lock beyond a read)."""
    if conn.exec_driver_sql("SELECT to_regclass('tune_schema_version')").scalar() is None:
        return False
    found = conn.exec_driver_sql("SELECT max(version) FROM tune_schema_version").scalar()
    return found is not None and found >= SCHEMA_VERSION

# No percent sign in SCHEMA, even in a comment: psycopg2 reads one as a parameter.
SCHEMA = """
CREATE TABLE IF NOT EXISTS tune_schema_version (version integer NOT NULL);
-- Who this database is: results kept on a host's disk during an outage are only ever
-- delivered to the database they came from (runner/spool.py).
CREATE TABLE IF NOT EXISTS tune_database (id text NOT NULL);
INSERT INTO tune_database SELECT md5(random()::text || clock_timestamp()::text)
WHERE NOT EXISTS (SELECT 1 FROM tune_database);
CREATE TABLE IF NOT EXISTS tune_journal (
    stream  text   NOT NULL,
    seq     bigint NOT NULL,
    body    jsonb  NOT NULL,
    PRIMARY KEY (stream, seq)
);
CREATE TABLE IF NOT EXISTS tune_streams (
    stream     text PRIMARY KEY,
    next_seq   bigint NOT NULL DEFAULT 0,
    generation text NOT NULL DEFAULT md5(random()::text)  -- a new one when a study starts fresh
);
ALTER TABLE tune_streams ADD COLUMN IF NOT EXISTS generation text NOT NULL DEFAULT md5(random()::text);
CREATE TABLE IF NOT EXISTS tune_studies (
    name            text PRIMARY KEY,
    run_name        text NOT NULL,
    symbol          text NOT NULL,
    config_path     text,
    metric          text[] NOT NULL,  -- one entry per objective
    direction       text[] NOT NULL,
    target_trials   integer NOT NULL,
    max_attempts    integer NOT NULL,
    desired_workers integer NOT NULL DEFAULT 1,
    grace_seconds   double precision NOT NULL DEFAULT 10,
    control         text NOT NULL DEFAULT 'running',
    ended_code      text,  -- runner.states.EndCode
    ended_reason    text,  -- the message for a person
    next_worker_index integer NOT NULL DEFAULT 0,  -- each worker ever started gets its own (its seed)
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- The bars a study's trials see, as [first timestamp, first unseen one] (control.pin_seen_bars).
ALTER TABLE tune_studies ADD COLUMN IF NOT EXISTS seen_bars jsonb;
-- tune archive: out of the default views (tune status, the app), still loadable; a new run clears it.
ALTER TABLE tune_studies ADD COLUMN IF NOT EXISTS archived_at timestamptz;
-- tune refine: the study this one was refined from (its lineage); NULL: a run of its own.
ALTER TABLE tune_studies ADD COLUMN IF NOT EXISTS parent text;
CREATE TABLE IF NOT EXISTS tune_workers (
    id           text PRIMARY KEY,
    study        text NOT NULL,
    host         text NOT NULL,
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    status       text NOT NULL DEFAULT 'starting',
    trial_id     integer,
    trials_done  integer NOT NULL DEFAULT 0,
    exit_reason  text,
    worker_index integer NOT NULL DEFAULT 0
);
ALTER TABLE tune_studies ADD COLUMN IF NOT EXISTS next_worker_index integer NOT NULL DEFAULT 0;
ALTER TABLE tune_studies ADD COLUMN IF NOT EXISTS ended_code text;
ALTER TABLE tune_studies ADD COLUMN IF NOT EXISTS space jsonb;  -- {param: Optuna distribution JSON}
ALTER TABLE tune_studies ADD COLUMN IF NOT EXISTS fold integer;  -- a walk-forward fold's number; NULL: the main study
-- The data its trials may see: [validation] holdout and walk_forward (NULL: a study from before them)
ALTER TABLE tune_studies ADD COLUMN IF NOT EXISTS split jsonb;
DO $$ BEGIN  -- databases made before objectives were arrays ("sharpe,max_drawdown")
    IF (SELECT data_type FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'tune_studies' AND column_name = 'metric') = 'text' THEN
        ALTER TABLE tune_studies ALTER COLUMN metric TYPE text[] USING string_to_array(metric, ','),
                                 ALTER COLUMN direction TYPE text[] USING string_to_array(direction, ',');
    END IF;
END $$;
ALTER TABLE tune_workers ADD COLUMN IF NOT EXISTS worker_index integer NOT NULL DEFAULT 0;
-- What a worker uses and what its host bears, as of its last heartbeat (runner/heartbeat.py,
-- runner/hosts.py); NULL when not measured (a worker from before them, or psutil failed).
ALTER TABLE tune_workers ADD COLUMN IF NOT EXISTS cpu_percent real;  -- this process's CPU since its last beat; 100 = one core
ALTER TABLE tune_workers ADD COLUMN IF NOT EXISTS rss_bytes bigint;  -- its resident memory
ALTER TABLE tune_workers ADD COLUMN IF NOT EXISTS host_load real;  -- the host's 1-minute load average
ALTER TABLE tune_workers ADD COLUMN IF NOT EXISTS host_cpus integer;  -- the host's logical CPUs
ALTER TABLE tune_workers ADD COLUMN IF NOT EXISTS host_mem_percent real;  -- the host's memory in use, percent
CREATE INDEX IF NOT EXISTS tune_workers_study ON tune_workers (study, status);
CREATE TABLE IF NOT EXISTS tune_events (
    id      bigserial PRIMARY KEY,
    study   text NOT NULL,
    worker  text,
    at      timestamptz NOT NULL DEFAULT now(),
    level   text NOT NULL,
    message text NOT NULL
);
CREATE INDEX IF NOT EXISTS tune_events_study ON tune_events (study, id);
CREATE TABLE IF NOT EXISTS tune_param_claims (
    study        text NOT NULL,
    key          text NOT NULL,
    trial_number integer NOT NULL,
    worker       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (study, key)
);
-- Out-of-sample results of a study's best trials on its holdout (runner/validation.py):
-- kept outside the study's journal, where no sampler can see them.
CREATE TABLE IF NOT EXISTS tune_holdout (
    study        text NOT NULL,
    trial_number integer NOT NULL,
    metrics      jsonb,            -- NULL when the evaluation failed (error says why)
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (study, trial_number)
);
-- A study's trust report (runner/insight.py), computed once and read by the app and the CLI.
CREATE TABLE IF NOT EXISTS tune_reports (
    study       text PRIMARY KEY,
    trials      integer NOT NULL,   -- finished trials when it was computed
    body        jsonb NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now()
);
-- What a follower of a study (runner/monitor.py) knows at a point of its journal: counts,
-- best, last trials, a thinned convergence series, the open trials. A follower starts
-- from it and reads only the records past ``seq`` (issue 14: the first screen and tune
-- status cost the same at 100 or 100,000 trials). A cache: any follower rewrites it.
CREATE TABLE IF NOT EXISTS tune_summaries (
    study      text PRIMARY KEY,
    seq        bigint NOT NULL,        -- journal records it covers
    created_at timestamptz NOT NULL,   -- the study row's: a fresh start makes it void
    body       jsonb NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
-- A running study's parameter importances, recomputed by a worker as trials arrive
-- (runner/importances.py): the size a worker claimed, and the last result.
CREATE TABLE IF NOT EXISTS tune_importances (
    study       text PRIMARY KEY,
    claimed     integer NOT NULL,   -- complete trials at the last claim
    trials      integer,            -- complete trials the stored body was computed from
    body        jsonb,
    computed_at timestamptz
);
-- [notify] (runner/notify.py): the events a study's config wants told (NULL: none), so that
-- any process noticing one (a reaper in the app) records it only when it is wanted.
ALTER TABLE tune_studies ADD COLUMN IF NOT EXISTS notify text[];
-- When the worker last finished a trial (its heartbeat notices): a study is stalled when
-- none of its workers has for a while.
ALTER TABLE tune_workers ADD COLUMN IF NOT EXISTS last_trial_at timestamptz;
-- Each event to tell, once: the key (progress:100, lost:<worker>) makes a second notice of
-- one event a no-op; a sender claims a row for a while (claimed_at) and marks it sent.
CREATE TABLE IF NOT EXISTS tune_notifications (
    study      text NOT NULL,
    key        text NOT NULL,
    kind       text NOT NULL,   -- one of runner.config's NOTIFY_EVENTS
    body       jsonb NOT NULL,  -- what the message says, as data
    created_at timestamptz NOT NULL DEFAULT now(),
    claimed_by text,            -- the sending worker
    claimed_at timestamptz,
    sent_at    timestamptz,
    error      text,            -- the channels that refused it, and why
    PRIMARY KEY (study, key)
);
CREATE INDEX IF NOT EXISTS tune_notifications_unsent ON tune_notifications (created_at) WHERE sent_at IS NULL;
-- A study's best as workers saw it, and as last told: a new best is told when it beats the
-- last one told by [notify] min_improvement, at most once per best_every_seconds.
CREATE TABLE IF NOT EXISTS tune_notify_best (
    study      text PRIMARY KEY,
    seen_value double precision NOT NULL,
    seen_body  jsonb NOT NULL,
    told_value double precision,
    told_at    timestamptz
);
-- A worker's view of a study's trials after ``records`` journal records, as compressed JSON
-- (runner/storage/checkpoint.py): a worker joining a long study restores it and reads only
-- the records after it. A cache: workers rewrite it as the study grows (checkpoint.due).
CREATE TABLE IF NOT EXISTS tune_checkpoints (
    stream     text PRIMARY KEY,
    generation text NOT NULL,    -- tune_streams.generation: a fresh start makes it void
    records    bigint NOT NULL,
    trials     integer NOT NULL,
    body       bytea NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
-- Before version 14, importances of a maximised objective ranked what makes it worst
-- (PED-ANOVA takes low targets as good): dropped once, so none is shown; workers and
-- tune report compute them again.
DO $$ BEGIN
    IF (SELECT max(version) FROM tune_schema_version) < 14 THEN
        DELETE FROM tune_importances;
        UPDATE tune_reports SET body = jsonb_set(body, '{importances}',
            '{"n/a": "computed before a fix of their direction: run tune report again"}'::jsonb)
        WHERE body ? 'importances';
    END IF;
END $$;
"""

-- 0005: a run's heartbeat, so that a run whose process is gone can be told from a live one, and
-- the log of rows a run took over from runs that did not finish.

-- Who runs the run: a killed run stays 'running' (nothing is left to record its end); when its
-- process is gone (same host, pid dead or reused by a process started at another time), reads
-- show it as 'abandoned'. Rows written before this migration have NULLs: nothing can be told.
ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN host VARCHAR;
ALTER TABLE runs ADD COLUMN process_started DOUBLE;  -- the process's start, seconds since the epoch
ALTER TABLE runs ADD COLUMN last_seen TIMESTAMP;     -- refreshed at each stage and LLM-call flush

-- Rows of an unfinished run (failed, or abandoned) that a later run took over, per table.
CREATE TABLE run_adoptions (
    run_id        VARCHAR NOT NULL,      -- the run that took the rows over
    adopted_from  VARCHAR NOT NULL,      -- the run that had written them
    table_name    VARCHAR NOT NULL,
    rows          BIGINT NOT NULL,
    PRIMARY KEY (run_id, adopted_from, table_name)
);

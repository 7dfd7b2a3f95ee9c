-- 0004: explanation embeddings for search by meaning, and the log of ingested handoffs.

-- One sentence embedding per (explanation, embedding model): unit length, so the dot product of
-- two vectors is their cosine similarity. weights_hash names the exact model weights; vectors
-- of other weights are not comparable and are recomputed by a backfill.
CREATE TABLE explanation_embeddings (
    explanation_id VARCHAR NOT NULL,
    model         VARCHAR NOT NULL,      -- e.g. all-minilm-l6-v2
    weights_hash  VARCHAR NOT NULL,
    embedding     FLOAT[384] NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (explanation_id, model)
);

-- One row per handoff (a folder of Parquet files written by a worker) loaded by
-- `neuroscribe ingest`. handoff_id is a hash of the handoff's manifest (which holds every
-- file's sha256), so the same handoff is ingested once however often it is offered.
CREATE TABLE handoffs (
    handoff_id    VARCHAR PRIMARY KEY,
    name          VARCHAR NOT NULL,      -- folder name inside the handoff directory
    kind          VARCHAR NOT NULL,      -- what the worker did, e.g. collect
    run_id        VARCHAR NOT NULL,      -- the worker's run
    rows_written  JSON NOT NULL,         -- table -> rows in the handoff
    rows_added    JSON NOT NULL,         -- table -> rows that were new to the warehouse
    ingested_at   TIMESTAMP NOT NULL
);

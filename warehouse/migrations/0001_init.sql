-- 0001: the first schema. Tidy tables, one fact per row, provenance (run id) on every row.

CREATE TABLE runs (
    run_id        VARCHAR PRIMARY KEY,
    config_hash   VARCHAR NOT NULL,
    config_json   JSON NOT NULL,
    status        VARCHAR NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
    stage         VARCHAR,               -- last stage started
    error         VARCHAR,               -- why a failed run failed
    started_at    TIMESTAMP NOT NULL,
    finished_at   TIMESTAMP,
    neuroscribe_version VARCHAR NOT NULL
);

CREATE TABLE subjects (
    subject_id    VARCHAR PRIMARY KEY,   -- name@weights hash
    name          VARCHAR NOT NULL,
    weights_hash  VARCHAR NOT NULL,
    architecture  VARCHAR NOT NULL,
    n_layers      INTEGER NOT NULL
);

CREATE TABLE units (
    unit_key      VARCHAR PRIMARY KEY,   -- subject_id/site[/sae=...]/index
    subject_id    VARCHAR NOT NULL,
    site          VARCHAR NOT NULL,
    unit_index    INTEGER NOT NULL,
    sae_id        VARCHAR,
    run_id        VARCHAR NOT NULL,      -- the run that collected it
    corpus_id     VARCHAR NOT NULL,
    n_tokens      BIGINT NOT NULL,
    max_activation DOUBLE NOT NULL,
    mean_activation DOUBLE NOT NULL,
    firing_rate   DOUBLE NOT NULL,
    quantiles     DOUBLE[] NOT NULL,
    dead          BOOLEAN NOT NULL
);

CREATE TABLE windows (
    window_id     VARCHAR PRIMARY KEY,
    corpus_id     VARCHAR NOT NULL,
    doc_id        VARCHAR NOT NULL,
    start_token   INTEGER NOT NULL,
    token_ids     INTEGER[] NOT NULL,
    tokens        VARCHAR[] NOT NULL
);

-- One row per (unit, window): the unit's true activations there and the held-out split.
CREATE TABLE unit_windows (
    unit_key      VARCHAR NOT NULL,
    window_id     VARCHAR NOT NULL,
    split         VARCHAR NOT NULL CHECK (split IN
                    ('explain', 'validate', 'calibrate', 'score_top', 'score_random', 'score_ood')),
    top_rank      INTEGER NOT NULL,      -- -1 for random windows
    activations   FLOAT[] NOT NULL,
    run_id        VARCHAR NOT NULL,
    PRIMARY KEY (unit_key, window_id)    -- a window is in at most one split of a unit
);

CREATE TABLE explanations (
    explanation_id VARCHAR PRIMARY KEY,
    unit_key      VARCHAR NOT NULL,
    explainer     VARCHAR NOT NULL,      -- backend/model, or control/shuffled
    sample_index  INTEGER NOT NULL,
    status        VARCHAR NOT NULL CHECK (status IN ('ok', 'failed')),
    text          VARCHAR,
    failure       VARCHAR,
    prompt_name   VARCHAR,
    prompt_version VARCHAR,
    prompt_sha    VARCHAR,
    selected      BOOLEAN NOT NULL,
    validation_score DOUBLE,
    run_id        VARCHAR NOT NULL,
    config_hash   VARCHAR NOT NULL
);

CREATE TABLE simulations (
    simulation_id VARCHAR PRIMARY KEY,
    explanation_id VARCHAR NOT NULL,
    simulator     VARCHAR NOT NULL,
    window_id     VARCHAR NOT NULL,
    status        VARCHAR NOT NULL CHECK (status IN ('ok', 'failed')),
    predictions   FLOAT[] NOT NULL,
    failure       VARCHAR,
    prompt_sha    VARCHAR,
    run_id        VARCHAR NOT NULL
);

CREATE TABLE scores (
    explanation_id VARCHAR NOT NULL,
    simulator     VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,
    value         DOUBLE,                -- NULL when undefined; see reason
    reason        VARCHAR,
    n_tokens      INTEGER NOT NULL,
    n_windows     INTEGER NOT NULL,
    ci_low        DOUBLE,
    ci_high       DOUBLE,
    run_id        VARCHAR NOT NULL,
    PRIMARY KEY (explanation_id, simulator, kind)
);

CREATE TABLE agreements (
    unit_key      VARCHAR,               -- NULL for statistics over all units
    kind          VARCHAR NOT NULL,
    annotators    VARCHAR[] NOT NULL,
    value         DOUBLE,
    reason        VARCHAR,
    n             INTEGER NOT NULL,
    run_id        VARCHAR NOT NULL
);

CREATE TABLE llm_calls (
    request_hash  VARCHAR NOT NULL,
    annotator     VARCHAR NOT NULL,
    purpose       VARCHAR NOT NULL,
    prompt_sha    VARCHAR,
    params        JSON NOT NULL,
    response      VARCHAR,
    status        VARCHAR NOT NULL,
    error         VARCHAR,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_ms    DOUBLE NOT NULL,
    cost_usd      DOUBLE,
    cache_hit     BOOLEAN NOT NULL,
    run_id        VARCHAR NOT NULL,
    called_at     TIMESTAMP NOT NULL
);

-- 0007: audits, the auditing game: known features planted in a copy of the subject, the
-- pipeline run on the copy, and what its explanations recovered.

-- One row per audit: the pipeline run on the planted copy, and how the copy was made.
CREATE TABLE audits (
    run_id            VARCHAR PRIMARY KEY,   -- the pipeline run on the planted copy
    subject           VARCHAR NOT NULL,      -- the original subject's name
    subject_weights_hash VARCHAR NOT NULL,
    planted_model     VARCHAR NOT NULL,      -- folder of the saved planted copy
    site              VARCHAR NOT NULL,
    kind              VARCHAR NOT NULL CHECK (kind IN ('word', 'concept')),
    n_planted         INTEGER NOT NULL,
    n_unplanted       INTEGER NOT NULL,
    seed              INTEGER NOT NULL,
    similarity_threshold DOUBLE NOT NULL,    -- concept recovery: MiniLM cosine at least this
    function_change   DOUBLE NOT NULL,       -- max |change| of final hidden states and logits
    function_windows  INTEGER NOT NULL,      -- windows that figure was measured on
    spec_json         JSON NOT NULL,
    created_at        TIMESTAMP NOT NULL
);

-- One row per (audit, collected unit, explainer): planted units with their trigger and verdict,
-- unplanted units (trigger and verdict NULL) for comparison.
CREATE TABLE audit_units (
    run_id            VARCHAR NOT NULL,
    unit_key          VARCHAR NOT NULL,      -- in the planted copy
    unit_index        INTEGER NOT NULL,
    planted           BOOLEAN NOT NULL,
    kind              VARCHAR CHECK (kind IN ('word', 'concept')),
    trigger           VARCHAR,               -- the word, or the concept's name
    trigger_words     VARCHAR[],
    trigger_token_ids INTEGER[],
    trigger_windows   INTEGER,               -- collected windows holding the trigger
    relocated_to      INTEGER,               -- where the unit's original neuron lives in the copy
    plant_auroc       DOUBLE,                -- trigger vs rest on the planting sample
    function_change   DOUBLE NOT NULL,       -- the copy's figure (all plants are made at once)
    explainer         VARCHAR NOT NULL,
    explanation_id    VARCHAR,               -- the selected explanation (NULL: none)
    explanation       VARCHAR,
    recovered         BOOLEAN,               -- NULL for unplanted units
    why               VARCHAR,
    similarity        DOUBLE,                -- concept plants: cosine to the concept's words
    PRIMARY KEY (run_id, unit_key, explainer)
);

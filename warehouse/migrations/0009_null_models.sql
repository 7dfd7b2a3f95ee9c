-- 0009: the random-model null ([controls] random_model): a run on the trained subject linked to
-- the pipeline run on its seeded re-initialised copy (same units, corpus windows and annotators).

-- One row per trained run that made the null: the two runs and how the copy was made.
CREATE TABLE null_models (
    trained_run_id    VARCHAR PRIMARY KEY,   -- the run on the trained subject
    null_run_id       VARCHAR NOT NULL,      -- the pipeline run on the re-initialised copy
    subject           VARCHAR NOT NULL,      -- the trained subject's name
    subject_weights_hash VARCHAR NOT NULL,
    null_model        VARCHAR NOT NULL,      -- folder of the saved copy (the null run's subject)
    null_weights_hash VARCHAR NOT NULL,
    method            VARCHAR NOT NULL,      -- 'reinitialised': the model class's own init
    seed              INTEGER NOT NULL,      -- of the init (collect.seed)
    created_at        TIMESTAMP NOT NULL
);

-- The explanations each side worked on (what its pipeline run returned, reused ones included),
-- so that the views compare exactly these two runs' explanations.
CREATE TABLE null_model_explanations (
    trained_run_id    VARCHAR NOT NULL,
    side              VARCHAR NOT NULL CHECK (side IN ('trained', 'random')),
    explanation_id    VARCHAR NOT NULL,
    PRIMARY KEY (trained_run_id, explanation_id)
);

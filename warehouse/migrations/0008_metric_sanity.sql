-- 0008: metric sanity, NeuronEval's missing-label and extra-label tests of every score kind on
-- an audit's planted units (neuroscribe.audit.sanity).

-- One row per (audit, simulator, score kind): on how many planted units the true explanation
-- outscores the one with the trigger replaced or part of the concept removed (missing label),
-- the one with unrelated words added (extra label), and both. Ties and NULLs do not outscore.
CREATE TABLE metric_sanity (
    run_id            VARCHAR NOT NULL,      -- the audit (its pipeline run on the planted copy)
    simulator         VARCHAR NOT NULL,
    score_kind        VARCHAR NOT NULL,
    n_units           INTEGER NOT NULL,      -- planted units tested
    n_missing_passed  INTEGER NOT NULL,
    n_extra_passed    INTEGER NOT NULL,
    n_passed          INTEGER NOT NULL,      -- both tests
    n_undefined       INTEGER NOT NULL,      -- units where one of the three scores is NULL
    pass_share        DOUBLE,                -- n_passed / n_units (NULL: no unit tested)
    passes            BOOLEAN NOT NULL,      -- pass_share >= 0.9
    created_at        TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, simulator, score_kind)
);

-- 0006: comparing subjects unit by unit (`neuroscribe compare`).

-- One row per (subject pair, site pair) a comparison run accumulated: the tokens seen, the
-- widths, how many units varied, linear CKA (NULL where a side is constant), and whether the
-- units were matched (pairs of the same site) or the pair was kept for CKA only (the layer x
-- layer heatmap). `threshold` is the run's compare.threshold, so views need no config.
CREATE TABLE site_comparisons (
    run_id        VARCHAR NOT NULL,
    subject_a_id  VARCHAR NOT NULL,
    subject_b_id  VARCHAR NOT NULL,
    site_a        VARCHAR NOT NULL,
    site_b        VARCHAR NOT NULL,
    corpus_id     VARCHAR NOT NULL,
    n_tokens      BIGINT NOT NULL,
    n_a           INTEGER NOT NULL,
    n_b           INTEGER NOT NULL,
    live_a        INTEGER NOT NULL,
    live_b        INTEGER NOT NULL,
    cka           DOUBLE,
    matched       BOOLEAN NOT NULL,
    threshold     DOUBLE NOT NULL,
    PRIMARY KEY (run_id, subject_a_id, subject_b_id, site_a, site_b)
);

-- Unit matches of a matched site pair. kind: 'best_a' (A unit's best partner in B: max Pearson
-- r over the corpus's tokens), 'best_b' (B unit's best partner in A), 'one_to_one' (Hungarian
-- matching maximising summed r). A unit constant over the corpus has no partner: the other
-- side's index and r are NULL (r is undefined there, not 0).
CREATE TABLE unit_matches (
    run_id        VARCHAR NOT NULL,
    subject_a_id  VARCHAR NOT NULL,
    subject_b_id  VARCHAR NOT NULL,
    site_a        VARCHAR NOT NULL,
    site_b        VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,
    unit_a        INTEGER,
    unit_b        INTEGER,
    r             DOUBLE
);

-- 0013: comparisons of sparse autoencoders (`neuroscribe compare --sae A --sae B`), whose units
-- are SAE latents, and matchings of two kinds.
--
-- site_comparisons and unit_matches get `sae_a_id` and `sae_b_id`: the SAE whose latents are
-- side A's (B's) units, NULL where the units are the subject's own (every row before 0013). Two
-- SAEs of one site compare one subject with itself at one site, so the pair is no longer named
-- by (run, subjects, sites) alone: site_comparisons is rebuilt without its primary key (DuckDB
-- cannot drop one), keeping every row and column; a run writes its pairs once, in one
-- transaction.
--
-- unit_matches gets `basis`: what the similarity `r` is. 'activation' (Pearson r of the units'
-- activations over the corpus's tokens: every row before 0013) or 'decoder' (cosine similarity
-- of two SAEs' decoder directions; SAE pairs only).

CREATE TABLE site_comparisons_0013 (
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
    similarity    DOUBLE,
    score_change  DOUBLE,
    cka_method    VARCHAR DEFAULT 'corpus',
    sae_a_id      VARCHAR,
    sae_b_id      VARCHAR
);

INSERT INTO site_comparisons_0013
SELECT run_id, subject_a_id, subject_b_id, site_a, site_b, corpus_id, n_tokens, n_a, n_b,
       live_a, live_b, cka, matched, threshold, similarity, score_change, cka_method, NULL, NULL
FROM site_comparisons;

DROP TABLE site_comparisons;

ALTER TABLE site_comparisons_0013 RENAME TO site_comparisons;

ALTER TABLE unit_matches ADD COLUMN sae_a_id VARCHAR;
ALTER TABLE unit_matches ADD COLUMN sae_b_id VARCHAR;
ALTER TABLE unit_matches ADD COLUMN basis VARCHAR DEFAULT 'activation';
ALTER TABLE unit_matches ALTER COLUMN basis SET NOT NULL;

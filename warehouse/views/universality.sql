-- Per compared site pair of a finished comparison run and per basis of its matching: how much
-- of A is found in B and of B in A. The units are the subjects' own (sae_a_id, sae_b_id NULL)
-- or, for a comparison of SAEs, the latents of SAE sae_a_id and of SAE sae_b_id. basis:
-- 'activation' (r = Pearson r of activations over the corpus) or 'decoder' (r = cosine of two
-- SAEs' decoder directions). share_a_matched = share of A's units whose best partner in B has
-- r >= the run's threshold, among A's units with a defined r (neuroscribe.compare.universality);
-- share_b_matched the same from B's side; share_one_to_one = share of the one-to-one pairs at
-- r >= threshold, over min(n_a, n_b); mean_r_a = mean best-partner r of A's units.
-- one_to_one_agreement (SAE pairs, matched both ways; the same on both rows): share of the
-- one-to-one pairs by activation (those with a defined r: dead latents have none) that the
-- one-to-one matching by decoder also makes; NULL where the pair was matched by one basis only. CKA is linear CKA of the two sites' (SAEs') activations.
CREATE OR REPLACE VIEW universality AS
WITH c AS (
    SELECT *, coalesce(sae_a_id, '') AS sae_a, coalesce(sae_b_id, '') AS sae_b
    FROM site_comparisons
    WHERE matched
),
m AS (
    SELECT *, coalesce(sae_a_id, '') AS sae_a, coalesce(sae_b_id, '') AS sae_b
    FROM unit_matches
),
one AS (
    SELECT run_id, subject_a_id, subject_b_id, site_a, site_b, sae_a, sae_b, basis, unit_a, unit_b
    FROM m
    WHERE kind = 'one_to_one' AND r IS NOT NULL
),
agreement AS (
    SELECT o.run_id, o.subject_a_id, o.subject_b_id, o.site_a, o.site_b, o.sae_a, o.sae_b,
           avg(CASE WHEN x.unit_a IS NULL THEN 0.0 ELSE 1.0 END) AS one_to_one_agreement
    FROM one o
    LEFT JOIN one x
        ON x.run_id = o.run_id AND x.subject_a_id = o.subject_a_id
       AND x.subject_b_id = o.subject_b_id AND x.site_a = o.site_a AND x.site_b = o.site_b
       AND x.sae_a = o.sae_a AND x.sae_b = o.sae_b AND x.basis = 'decoder'
       AND x.unit_a = o.unit_a AND x.unit_b = o.unit_b
    WHERE o.basis = 'activation' AND EXISTS (
        SELECT 1 FROM m y
        WHERE y.run_id = o.run_id AND y.subject_a_id = o.subject_a_id
          AND y.subject_b_id = o.subject_b_id AND y.site_a = o.site_a AND y.site_b = o.site_b
          AND y.sae_a = o.sae_a AND y.sae_b = o.sae_b AND y.basis = 'decoder'
    )
    GROUP BY ALL
),
shares AS (
    SELECT
        c.run_id, c.subject_a_id, c.subject_b_id, c.site_a, c.site_b, c.sae_a, c.sae_b,
        any_value(c.sae_a_id) AS sae_a_id, any_value(c.sae_b_id) AS sae_b_id, m.basis,
        c.n_a, c.n_b, c.live_a, c.live_b, c.n_tokens, c.threshold,
        avg(CASE WHEN m.r >= c.threshold THEN 1.0 ELSE 0.0 END)
            FILTER (WHERE m.kind = 'best_a' AND m.r IS NOT NULL)          AS share_a_matched,
        avg(CASE WHEN m.r >= c.threshold THEN 1.0 ELSE 0.0 END)
            FILTER (WHERE m.kind = 'best_b' AND m.r IS NOT NULL)          AS share_b_matched,
        count(*) FILTER (WHERE m.kind = 'one_to_one' AND m.r >= c.threshold)
            / least(c.n_a, c.n_b)                                         AS share_one_to_one,
        avg(m.r) FILTER (WHERE m.kind = 'best_a')                         AS mean_r_a,
        avg(m.r) FILTER (WHERE m.kind = 'best_b')                         AS mean_r_b,
        c.cka
    FROM c
    JOIN m USING (run_id, subject_a_id, subject_b_id, site_a, site_b, sae_a, sae_b)
    JOIN runs r ON r.run_id = c.run_id
    WHERE r.status = 'finished'
    GROUP BY c.run_id, c.subject_a_id, c.subject_b_id, c.site_a, c.site_b, c.sae_a, c.sae_b,
        m.basis, c.n_a, c.n_b, c.live_a, c.live_b, c.n_tokens, c.threshold, c.cka
)
SELECT s.run_id, s.subject_a_id, s.subject_b_id, s.site_a, s.site_b,
       s.n_a, s.n_b, s.live_a, s.live_b, s.n_tokens, s.threshold,
       s.share_a_matched, s.share_b_matched, s.share_one_to_one, s.mean_r_a, s.mean_r_b, s.cka,
       s.sae_a_id, s.sae_b_id, s.basis, a.one_to_one_agreement
FROM shares s
LEFT JOIN agreement a USING (run_id, subject_a_id, subject_b_id, site_a, site_b, sae_a, sae_b);

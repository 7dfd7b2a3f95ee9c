-- Per compared site pair of a finished comparison run: how much of A is found in B and of B in
-- A. share_a_matched = share of A's units whose best partner in B has r >= the run's threshold,
-- among A's units with a defined r (neuroscribe.compare.universality); share_b_matched the same
-- from B's side; share_one_to_one = share of the one-to-one pairs at r >= threshold, over
-- min(n_a, n_b); mean_r_a = mean best-partner r of A's units. CKA is linear CKA of the two sites.
CREATE OR REPLACE VIEW universality AS
SELECT
    c.run_id, c.subject_a_id, c.subject_b_id, c.site_a, c.site_b,
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
FROM site_comparisons c
JOIN unit_matches m USING (run_id, subject_a_id, subject_b_id, site_a, site_b)
JOIN runs r ON r.run_id = c.run_id
WHERE c.matched AND r.status = 'finished'
GROUP BY c.run_id, c.subject_a_id, c.subject_b_id, c.site_a, c.site_b, c.n_a, c.n_b,
    c.live_a, c.live_b, c.n_tokens, c.threshold, c.cka;

-- What changed between two subjects, unit by unit, from a finished comparison run: units of B
-- whose best partner in A is below the run's threshold ('new'), and units of A whose best
-- partner in B is ('lost'); change = 1 - best-partner r, largest first. A unit constant over the
-- corpus has no defined r and is not listed (it is silent, not changed). Where the unit has a
-- scored explanation, the best one (highest headline score over simulators) comes with it.
-- depends: best_explanations
CREATE OR REPLACE VIEW model_diff AS
WITH best AS (
    SELECT subject_id, site, unit_index,
           arg_max(explanation, score) AS explanation,
           arg_max(explainer, score)   AS explainer,
           max(score)                  AS explanation_score
    FROM best_explanations
    WHERE sae_id IS NULL
    GROUP BY subject_id, site, unit_index
),
changed AS (
    SELECT m.run_id, 'new' AS change, m.subject_b_id AS subject_id, m.site_b AS site,
           m.unit_b AS unit_index, m.subject_a_id AS other_subject_id, m.site_a AS other_site,
           m.unit_a AS partner_index, m.r AS partner_r, c.threshold
    FROM unit_matches m
    JOIN site_comparisons c USING (run_id, subject_a_id, subject_b_id, site_a, site_b)
    WHERE m.kind = 'best_b' AND m.r < c.threshold
    UNION ALL
    SELECT m.run_id, 'lost', m.subject_a_id, m.site_a, m.unit_a, m.subject_b_id, m.site_b,
           m.unit_b, m.r, c.threshold
    FROM unit_matches m
    JOIN site_comparisons c USING (run_id, subject_a_id, subject_b_id, site_a, site_b)
    WHERE m.kind = 'best_a' AND m.r < c.threshold
)
SELECT ch.run_id, ch.change, ch.subject_id, ch.site, ch.unit_index,
       1 - ch.partner_r AS change_size,
       ch.partner_index, ch.partner_r, ch.other_subject_id, ch.other_site, ch.threshold,
       b.explainer, b.explanation, b.explanation_score
FROM changed ch
JOIN runs r ON r.run_id = ch.run_id
LEFT JOIN best b USING (subject_id, site, unit_index)
WHERE r.status = 'finished'
ORDER BY ch.run_id, change_size DESC, ch.change, ch.site, ch.unit_index;

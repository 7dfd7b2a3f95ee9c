-- Scores read against the controls: for each annotator (explainer under one simulator) and score
-- kind, on how many units its score beats both the shuffled control (control/shuffled) and the
-- n-gram baseline explainer (baseline/ngram) under the same simulator. The same rules as
-- neuroscribe.score.compare_with_controls (a test holds the two equal):
-- selected, ok explanations of finished runs; a unit is compared when the annotator and both
-- controls have a score row and not all three are NULL; a defined value beats a smaller one or a
-- NULL, a NULL beats nothing. Grouped per subject, site and SAE so that runs on different layers
-- are not pooled.
CREATE OR REPLACE VIEW control_comparison AS
WITH scored AS (
    SELECT e.unit_key, e.explainer, sc.simulator, sc.kind, sc.value
    FROM scores sc
    JOIN explanations e USING (explanation_id)
    JOIN runs r ON r.run_id = sc.run_id
    WHERE r.status = 'finished' AND e.status = 'ok' AND e.selected
),
compared AS (
    SELECT
        a.unit_key, a.explainer, a.simulator, a.kind,
        a.value AS score, sh.value AS shuffled, bl.value AS baseline,
        a.value IS NOT NULL AND (sh.value IS NULL OR a.value > sh.value) AS beats_shuffled,
        a.value IS NOT NULL AND (bl.value IS NULL OR a.value > bl.value) AS beats_baseline
    FROM scored a
    JOIN scored sh ON sh.unit_key = a.unit_key AND sh.simulator = a.simulator
        AND sh.kind = a.kind AND sh.explainer = 'control/shuffled'
    JOIN scored bl ON bl.unit_key = a.unit_key AND bl.simulator = a.simulator
        AND bl.kind = a.kind AND bl.explainer = 'baseline/ngram'
    WHERE a.explainer NOT IN ('control/shuffled', 'baseline/ngram')
      AND NOT (a.value IS NULL AND sh.value IS NULL AND bl.value IS NULL)
)
SELECT
    u.subject_id,
    u.site,
    u.sae_id,
    c.explainer,
    c.simulator,
    c.explainer || '|' || c.simulator                  AS annotator,
    c.kind                                             AS score_kind,
    count(*)                                           AS n_units,
    count(*) FILTER (WHERE c.beats_shuffled)           AS n_beats_shuffled,
    count(*) FILTER (WHERE c.beats_baseline)           AS n_beats_baseline,
    count(*) FILTER (WHERE c.beats_shuffled AND c.beats_baseline) AS n_beats_both,
    (count(*) FILTER (WHERE c.beats_shuffled AND c.beats_baseline)) / count(*) AS share_beats_both,
    avg(c.score)                                       AS mean_score,
    avg(c.shuffled)                                    AS mean_shuffled,
    avg(c.baseline)                                    AS mean_baseline
FROM compared c
JOIN units u ON u.unit_key = c.unit_key
GROUP BY u.subject_id, u.site, u.sae_id, c.explainer, c.simulator, c.kind;

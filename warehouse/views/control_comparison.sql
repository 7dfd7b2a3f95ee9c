-- Scores read against the controls: for each annotator (explainer under one simulator) and score
-- kind, on how many units its score beats both the shuffled control (control/shuffled) and the
-- n-gram baseline explainer (baseline/ngram) under the same simulator, by the rules of
-- control_comparison_units. A control whose predictions were constant counts as 0 there:
-- n_shuffled_constant and n_baseline_constant say on how many units, and the means include those
-- zeros. Grouped per subject, site and SAE so that runs on different layers are not pooled.
-- depends: control_comparison_units
CREATE OR REPLACE VIEW control_comparison AS
SELECT
    u.subject_id,
    u.site,
    u.sae_id,
    c.explainer,
    c.simulator,
    c.explainer || '|' || c.simulator                  AS annotator,
    c.score_kind,
    count(*)                                           AS n_units,
    count(*) FILTER (WHERE c.beats_shuffled)           AS n_beats_shuffled,
    count(*) FILTER (WHERE c.beats_baseline)           AS n_beats_baseline,
    count(*) FILTER (WHERE c.beats_shuffled AND c.beats_baseline) AS n_beats_both,
    (count(*) FILTER (WHERE c.beats_shuffled AND c.beats_baseline)) / count(*) AS share_beats_both,
    avg(c.score)                                       AS mean_score,
    avg(c.shuffled)                                    AS mean_shuffled,
    avg(c.baseline)                                    AS mean_baseline,
    count(*) FILTER (WHERE c.shuffled_constant)        AS n_shuffled_constant,
    count(*) FILTER (WHERE c.baseline_constant)        AS n_baseline_constant
FROM control_comparison_units c
JOIN units u ON u.unit_key = c.unit_key
WHERE c.explainer <> baseline_explainer()  -- the baseline's own rows: audit_unit_scores
GROUP BY u.subject_id, u.site, u.sae_id, c.explainer, c.simulator, c.score_kind;

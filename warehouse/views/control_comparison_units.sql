-- Scores read against the controls, unit by unit: one row per (unit, annotator, simulator, score
-- kind) where the annotator (an explainer other than the controls) and both controls, the
-- shuffled control (control/shuffled) and the n-gram baseline explainer (baseline/ngram), have a
-- score of that kind under the same simulator. The rules of the control comparison live here and
-- only here (control_comparison counts these rows; neuroscribe.warehouse.reads.control_comparisons
-- counts them for one run's explanations):
-- selected, ok explanations whose score was written by a finished run; a unit is compared when
-- the annotator and both controls have a score row and not all three are NULL (all NULL: the
-- unit's truth gave nothing to score); a defined value beats a smaller one or a NULL, a NULL
-- beats nothing (an undefined score shows no skill), a tie does not beat.
CREATE OR REPLACE VIEW control_comparison_units AS
WITH scored AS (
    SELECT sc.explanation_id, e.unit_key, e.explainer, sc.simulator, sc.kind, sc.value
    FROM scores sc
    JOIN explanations e USING (explanation_id)
    JOIN runs r ON r.run_id = sc.run_id
    WHERE r.status = 'finished' AND e.status = 'ok' AND e.selected
)
SELECT
    a.unit_key, a.explainer, a.simulator, a.kind AS score_kind,
    a.explanation_id, sh.explanation_id AS shuffled_explanation_id,
    bl.explanation_id AS baseline_explanation_id,
    a.value AS score, sh.value AS shuffled, bl.value AS baseline,
    a.value IS NOT NULL AND (sh.value IS NULL OR a.value > sh.value) AS beats_shuffled,
    a.value IS NOT NULL AND (bl.value IS NULL OR a.value > bl.value) AS beats_baseline
FROM scored a
JOIN scored sh ON sh.unit_key = a.unit_key AND sh.simulator = a.simulator
    AND sh.kind = a.kind AND sh.explainer = shuffled_control()
JOIN scored bl ON bl.unit_key = a.unit_key AND bl.simulator = a.simulator
    AND bl.kind = a.kind AND bl.explainer = baseline_explainer()
WHERE a.explainer NOT IN (shuffled_control(), baseline_explainer())
  AND NOT (a.value IS NULL AND sh.value IS NULL AND bl.value IS NULL);

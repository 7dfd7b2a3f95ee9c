-- An audit unit by unit: one row per (audit, collected unit, explainer, simulator, score kind)
-- with the unit's plant (planted, kind, trigger, how the plant came out on its sample), the
-- verdict (recovered, why), the selected explanation's score with its bootstrap interval, and
-- the score read against the controls by the rules of control_comparison_units (a control with
-- constant predictions counted as 0): beats_shuffled, beats_baseline (NULL for the n-gram
-- baseline itself) and beats_controls (both, or for the baseline the shuffled control alone;
-- NULL for the shuffled control and where the unit was not compared), against the controls'
-- explanations of the same audit (another audit of the same units may have drawn others).
-- Scores written by finished runs; a unit whose explainer gave no usable explanation has one row
-- with NULL scores.
-- depends: control_comparison_units
CREATE OR REPLACE VIEW audit_unit_scores AS
WITH scored AS (
    SELECT sc.*
    FROM scores sc
    JOIN runs r ON r.run_id = sc.run_id
    WHERE r.status = 'finished'
)
SELECT
    au.run_id, au.unit_key, au.unit_index, au.planted, au.kind, au.trigger, au.trigger_words,
    au.plant_auroc, au.plant_trigger_median, au.plant_trigger_spread, au.plant_max_other,
    au.function_change, au.explainer, au.explanation_id, au.explanation, au.recovered, au.why,
    au.similarity,
    sc.simulator, sc.kind AS score_kind, sc.value AS score, sc.ci_low, sc.ci_high,
    sc.reason AS score_undefined_reason,
    c.shuffled, c.shuffled_constant, c.baseline, c.baseline_constant,
    c.beats_shuffled, c.beats_baseline,
    c.beats_shuffled AND coalesce(c.beats_baseline, true) AS beats_controls
FROM audit_units au
LEFT JOIN scored sc ON sc.explanation_id = au.explanation_id
LEFT JOIN audit_units sh ON sh.run_id = au.run_id AND sh.unit_key = au.unit_key
    AND sh.explainer = shuffled_control()
LEFT JOIN audit_units bl ON bl.run_id = au.run_id AND bl.unit_key = au.unit_key
    AND bl.explainer = baseline_explainer()
LEFT JOIN control_comparison_units c ON c.explanation_id = au.explanation_id
    AND c.simulator = sc.simulator AND c.score_kind = sc.kind
    AND c.shuffled_explanation_id = sh.explanation_id
    AND c.baseline_explanation_id IS NOT DISTINCT FROM
        (CASE WHEN au.explainer <> baseline_explainer() THEN bl.explanation_id END);

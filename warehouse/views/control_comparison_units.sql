-- Scores read against the controls, unit by unit: one row per (unit, annotator, simulator, score
-- kind) where the annotator (an explainer other than the controls) and both controls, the
-- shuffled control (control/shuffled) and the n-gram baseline explainer (baseline/ngram), have a
-- score of that kind under the same simulator; and one row per (unit, simulator, kind) of the
-- n-gram baseline itself read against the shuffled control (its baseline columns and
-- beats_baseline NULL). The rules of the control comparison live here and only here
-- (control_comparison counts the annotators' rows; neuroscribe.warehouse.reads.control_comparisons
-- counts them for one run's explanations; audit_unit_scores shows them per planted unit):
-- selected, ok explanations whose score was written by a finished run; a unit is compared when
-- the annotator and the controls have a score row and not all of them are NULL (all NULL: the
-- unit's truth gave nothing to score); a control whose score is NULL because its predictions
-- were constant (reason 'constant predictions', or 'constant calibration predictions' for the
-- calibrated explained variance) counts as 0, flagged in shuffled_constant/baseline_constant: a
-- constant prediction carries no information, a correlation of 0 and an explained variance of at
-- most 0, so the control is compared rather than left undefined where the explanation is best;
-- a defined value beats a smaller one or a NULL, a NULL beats nothing (an undefined score shows
-- no skill), a tie does not beat.
CREATE OR REPLACE VIEW control_comparison_units AS
WITH scored AS (
    SELECT sc.explanation_id, e.unit_key, e.explainer, sc.simulator, sc.kind, sc.value,
           sc.value IS NULL AND (starts_with(sc.reason, 'constant predictions')
               OR starts_with(sc.reason, 'constant calibration predictions')) AS constant
    FROM scores sc
    JOIN explanations e USING (explanation_id)
    JOIN runs r ON r.run_id = sc.run_id
    WHERE r.status = 'finished' AND e.status = 'ok' AND e.selected
),
compared AS (
    SELECT
        a.unit_key, a.explainer, a.simulator, a.kind AS score_kind,
        a.explanation_id, sh.explanation_id AS shuffled_explanation_id,
        bl.explanation_id AS baseline_explanation_id,
        a.value AS score,
        CASE WHEN sh.constant THEN 0.0 ELSE sh.value END AS shuffled,
        CASE WHEN bl.constant THEN 0.0 ELSE bl.value END AS baseline,
        sh.constant AS shuffled_constant,
        bl.constant AS baseline_constant
    FROM scored a
    JOIN scored sh ON sh.unit_key = a.unit_key AND sh.simulator = a.simulator
        AND sh.kind = a.kind AND sh.explainer = shuffled_control()
    LEFT JOIN scored bl ON bl.unit_key = a.unit_key AND bl.simulator = a.simulator
        AND bl.kind = a.kind AND bl.explainer = baseline_explainer()
        AND a.explainer <> baseline_explainer()
    WHERE a.explainer <> shuffled_control()
      AND (bl.explanation_id IS NOT NULL OR a.explainer = baseline_explainer())
      AND NOT (a.value IS NULL AND sh.value IS NULL AND bl.value IS NULL)
)
SELECT
    *,
    score IS NOT NULL AND (shuffled IS NULL OR score > shuffled) AS beats_shuffled,
    CASE WHEN baseline_explanation_id IS NOT NULL
        THEN score IS NOT NULL AND (baseline IS NULL OR score > baseline)
    END AS beats_baseline
FROM compared;

-- Recovery of planted features, per audit x explainer x simulator x score kind: how many planted
-- units the selected explanation named (recovered), the share with its 95% Wilson score interval
-- (z = 1.959964; defined for n >= 1, and never outside [0, 1] even at 0 or n recovered), and the
-- median score of planted, recovered and unplanted units (scores written by finished runs; NULL
-- scores are left out of the medians). Recovery does not depend on the simulator; it repeats.
CREATE OR REPLACE VIEW audit_recovery AS
WITH units AS (
    SELECT au.run_id, au.explainer, au.unit_key, au.planted, au.recovered, sc.simulator,
           sc.kind AS score_kind, sc.value
    FROM audit_units au
    JOIN scores sc ON sc.explanation_id = au.explanation_id
    JOIN runs r ON r.run_id = sc.run_id
    WHERE r.status = 'finished'
),
planted AS (
    SELECT run_id, explainer, count(*) AS n_planted, count(*) FILTER (WHERE recovered) AS n_recovered
    FROM audit_units
    WHERE planted
    GROUP BY run_id, explainer
),
scored AS (
    SELECT run_id, explainer, simulator, score_kind,
           median(value) FILTER (WHERE planted) AS median_planted,
           median(value) FILTER (WHERE planted AND recovered) AS median_recovered,
           median(value) FILTER (WHERE NOT planted) AS median_unplanted,
           count(value) FILTER (WHERE planted) AS n_planted_scored,
           count(value) FILTER (WHERE NOT planted) AS n_unplanted_scored
    FROM units
    GROUP BY run_id, explainer, simulator, score_kind
),
rated AS (
    SELECT *, n_recovered / n_planted AS rate, 1.959964 ^ 2 / n_planted AS z2n
    FROM planted
)
SELECT
    s.run_id, s.explainer, s.simulator, s.score_kind,
    p.n_planted, p.n_recovered, p.rate AS recovery_rate,
    greatest(0.0, (p.rate + p.z2n / 2
        - 1.959964 * sqrt(p.rate * (1 - p.rate) / p.n_planted + p.z2n / (4 * p.n_planted)))
        / (1 + p.z2n)) AS wilson_low,
    least(1.0, (p.rate + p.z2n / 2
        + 1.959964 * sqrt(p.rate * (1 - p.rate) / p.n_planted + p.z2n / (4 * p.n_planted)))
        / (1 + p.z2n)) AS wilson_high,
    s.median_planted, s.median_recovered, s.median_unplanted,
    s.n_planted_scored, s.n_unplanted_scored
FROM scored s
JOIN rated p USING (run_id, explainer);

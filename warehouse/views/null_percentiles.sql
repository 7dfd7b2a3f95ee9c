-- Each trained unit's score read against the random-model null: one row per (trained run with a
-- null, trained unit's selected explanation, simulator, score kind), with the distribution of
-- the random model's scores of the same explainer x simulator x kind (the explanations of the
-- linked null run, null_models and null_model_explanations). Both sides: selected, ok
-- explanations whose score was written by a finished run; the trained run itself finished.
-- Undefined (NULL) scores are left out of the random mean, the percentile and the 95th
-- percentile (n_random_defined counts the rest). percentile: 100 x (random scores below +
-- half of those equal) / n_random_defined, NULL when the trained score is NULL or no random
-- score is defined. random_p95: quantile_cont (linear interpolation, numpy's default).
-- above_random_p95: the trained score is defined and strictly above random_p95 (NULL when
-- random_p95 is).
CREATE OR REPLACE VIEW null_percentiles AS
WITH linked AS (
    SELECT nm.trained_run_id, nm.null_run_id, ne.side, e.explanation_id, e.unit_key,
           e.explainer, sc.simulator, sc.kind AS score_kind, sc.value
    FROM null_models nm
    JOIN runs tr ON tr.run_id = nm.trained_run_id AND tr.status = 'finished'
    JOIN null_model_explanations ne ON ne.trained_run_id = nm.trained_run_id
    JOIN explanations e ON e.explanation_id = ne.explanation_id
    JOIN scores sc ON sc.explanation_id = e.explanation_id
    JOIN runs r ON r.run_id = sc.run_id
    WHERE r.status = 'finished' AND e.status = 'ok' AND e.selected
),
trained AS (SELECT * FROM linked WHERE side = 'trained'),
random AS (SELECT * FROM linked WHERE side = 'random'),
random_stats AS (
    SELECT trained_run_id, explainer, simulator, score_kind,
           count(*) AS n_random, count(value) AS n_random_defined, avg(value) AS random_mean,
           quantile_cont(value, 0.95) AS random_p95
    FROM random
    GROUP BY trained_run_id, explainer, simulator, score_kind
),
ranks AS (
    SELECT t.trained_run_id, t.explanation_id, t.simulator, t.score_kind,
           count(*) FILTER (WHERE r.value < t.value) AS n_below,
           count(*) FILTER (WHERE r.value = t.value) AS n_tied
    FROM trained t
    JOIN random r ON r.trained_run_id = t.trained_run_id AND r.explainer = t.explainer
        AND r.simulator = t.simulator AND r.score_kind = t.score_kind
    GROUP BY t.trained_run_id, t.explanation_id, t.simulator, t.score_kind
)
SELECT
    t.trained_run_id, t.null_run_id, t.unit_key, u.site, u.unit_index,
    t.explanation_id, t.explainer, t.simulator, t.score_kind, t.value AS score,
    coalesce(s.n_random, 0) AS n_random, coalesce(s.n_random_defined, 0) AS n_random_defined,
    s.random_mean, s.random_p95,
    CASE WHEN t.value IS NULL OR coalesce(s.n_random_defined, 0) = 0 THEN NULL
         ELSE 100.0 * (k.n_below + 0.5 * k.n_tied) / s.n_random_defined END AS percentile,
    CASE WHEN s.random_p95 IS NULL THEN NULL
         ELSE coalesce(t.value > s.random_p95, false) END AS above_random_p95
FROM trained t
JOIN units u ON u.unit_key = t.unit_key
LEFT JOIN random_stats s ON s.trained_run_id = t.trained_run_id AND s.explainer = t.explainer
    AND s.simulator = t.simulator AND s.score_kind = t.score_kind
LEFT JOIN ranks k ON k.trained_run_id = t.trained_run_id
    AND k.explanation_id = t.explanation_id AND k.simulator = t.simulator
    AND k.score_kind = t.score_kind;

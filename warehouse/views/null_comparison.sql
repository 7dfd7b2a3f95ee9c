-- The trained-vs-random gap: one row per (trained run with a null, explainer, simulator, score
-- kind) of null_percentiles. n_trained: trained units with a score row (n_trained_defined of
-- them defined); trained_mean and random_mean over defined scores; n_above_random_p95: trained
-- units strictly above the random model's 95th percentile (a NULL score is not above), and
-- share_above_random_p95 = n_above_random_p95 / n_trained (NULL when no random score is
-- defined); mean_percentile: mean of the defined percentiles.
-- depends: null_percentiles
CREATE OR REPLACE VIEW null_comparison AS
SELECT
    trained_run_id, any_value(null_run_id) AS null_run_id,
    explainer, simulator, score_kind,
    count(*) AS n_trained, count(score) AS n_trained_defined, avg(score) AS trained_mean,
    any_value(n_random) AS n_random, any_value(n_random_defined) AS n_random_defined,
    any_value(random_mean) AS random_mean,
    avg(score) - any_value(random_mean) AS mean_gap,
    any_value(random_p95) AS random_p95,
    count(*) FILTER (WHERE above_random_p95) AS n_above_random_p95,
    CASE WHEN any_value(random_p95) IS NULL THEN NULL
         ELSE count(*) FILTER (WHERE above_random_p95) / count(*) END AS share_above_random_p95,
    avg(percentile) AS mean_percentile
FROM null_percentiles
GROUP BY trained_run_id, explainer, simulator, score_kind;

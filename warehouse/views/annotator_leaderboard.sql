-- Explainers ranked under each simulator and score kind, over the selected explanation of each
-- unit (best-of-n losers are left out; the shuffled control stays in as the floor to beat).
-- defined_share: share of the explanations whose score is defined (not NULL).
-- depends: scored_explanations
CREATE OR REPLACE VIEW annotator_leaderboard AS
SELECT
    explainer,
    simulator,
    score_kind,
    explainer = shuffled_control()       AS is_control,
    count(DISTINCT unit_key)             AS units,
    count(*)                             AS explanations,
    count(score)                         AS defined,
    avg(score)                           AS mean_score,
    median(score)                        AS median_score,
    stddev_samp(score)                   AS sd_score,
    count(score)::DOUBLE / count(*)      AS defined_share
FROM scored_explanations
WHERE selected
GROUP BY explainer, simulator, score_kind
ORDER BY simulator, score_kind, mean_score DESC NULLS LAST, explainer;

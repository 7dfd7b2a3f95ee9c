-- Distribution of the selected explanations' scores per subject, site, explainer, simulator and
-- score kind. histogram: 20 counts of defined scores in buckets of width 0.1 from -1 to 1
-- (bucket i holds [-1 + i/10, -1 + (i+1)/10); values below -1 count in the first bucket and
-- values of 1 or more in the last). Quantiles are over defined scores only.
-- depends: scored_explanations
CREATE OR REPLACE VIEW score_distribution AS
WITH bucketed AS (
    SELECT subject, site, explainer, simulator, score_kind, score,
           CASE WHEN score IS NOT NULL  -- greatest() and least() skip NULLs
                THEN least(19, greatest(0, floor((score + 1.0) * 10.0)))::INTEGER END AS bucket
    FROM scored_explanations
    WHERE selected
)
SELECT
    subject, site, explainer, simulator, score_kind,
    count(*)                                  AS n,
    count(score)                              AS n_defined,
    avg(score)                                AS mean,
    stddev_samp(score)                        AS sd,
    min(score)                                AS min,
    quantile_cont(score, 0.10)                AS q10,
    quantile_cont(score, 0.25)                AS q25,
    quantile_cont(score, 0.50)                AS median,
    quantile_cont(score, 0.75)                AS q75,
    quantile_cont(score, 0.90)                AS q90,
    max(score)                                AS max,
    list_transform(range(20),
        lambda i: coalesce(map_extract_value(histogram(bucket), i::INTEGER), 0)::BIGINT
    )                                         AS histogram
FROM bucketed
GROUP BY subject, site, explainer, simulator, score_kind
ORDER BY subject, site, score_kind, simulator, explainer;

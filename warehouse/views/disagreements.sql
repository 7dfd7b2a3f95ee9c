-- Where annotators disagree about a unit, on the headline score kind (headline_score_kind(), from
-- neuroscribe.registry.HEADLINE_SCORE), largest spread (max - min) first.
--   axis = 'explainers': one simulator, the selected explanations of different explainers
--                        (each explainer's mean when it has several); simulator is set.
--   axis = 'simulators': one explanation scored by different simulators; explanation_id is set.
-- The shuffled control and undefined scores are left out; at least two annotators per row.
-- depends: scored_explanations
CREATE OR REPLACE VIEW disagreements AS
WITH scored AS (
    SELECT * FROM scored_explanations
    WHERE score_kind = headline_score_kind() AND selected
      AND explainer <> shuffled_control() AND score IS NOT NULL
),
per_explainer AS (
    SELECT unit_key, subject, site, unit_index, sae_id, simulator, explainer,
           avg(score) AS score
    FROM scored
    GROUP BY ALL
),
by_explainers AS (
    SELECT 'explainers' AS axis, unit_key, subject, site, unit_index, sae_id,
           simulator, NULL::VARCHAR AS explanation_id,
           count(*) AS annotators,
           min(score) AS min_score, max(score) AS max_score, max(score) - min(score) AS spread,
           arg_max(explainer, score) AS highest, arg_min(explainer, score) AS lowest
    FROM per_explainer
    GROUP BY unit_key, subject, site, unit_index, sae_id, simulator
    HAVING count(*) >= 2
),
by_simulators AS (
    SELECT 'simulators' AS axis, unit_key, subject, site, unit_index, sae_id,
           NULL::VARCHAR AS simulator, explanation_id,
           count(*) AS annotators,
           min(score) AS min_score, max(score) AS max_score, max(score) - min(score) AS spread,
           arg_max(simulator, score) AS highest, arg_min(simulator, score) AS lowest
    FROM scored
    GROUP BY unit_key, subject, site, unit_index, sae_id, explanation_id
    HAVING count(*) >= 2
)
SELECT * FROM (SELECT * FROM by_explainers UNION ALL SELECT * FROM by_simulators)
ORDER BY spread DESC, axis, unit_key, simulator, explanation_id;

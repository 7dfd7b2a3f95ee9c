-- The best explanation of each unit under each simulator: the selected explanation with the
-- highest defined score of the headline kind (headline_score_kind(), from
-- neuroscribe.registry.HEADLINE_SCORE), the shuffled control excluded. Ties go to the explainer
-- and explanation id that sort first. A unit whose scores are all undefined has no row here.
-- depends: scored_explanations
CREATE OR REPLACE VIEW best_explanations AS
SELECT * EXCLUDE (rank_in_unit)
FROM (
    SELECT
        unit_key, subject, subject_id, site, unit_index, sae_id,
        simulator,
        explanation_id, explainer, explanation,
        score, ci_low, ci_high, n_tokens, n_windows,
        count(*) OVER w                  AS candidates,
        row_number() OVER (w ORDER BY score DESC, explainer, explanation_id) AS rank_in_unit,
        prompt_sha, explanation_run_id, run_id, config_hash
    FROM scored_explanations
    WHERE score_kind = headline_score_kind()
      AND selected
      AND explainer <> shuffled_control()
      AND score IS NOT NULL
    WINDOW w AS (PARTITION BY unit_key, simulator)
)
WHERE rank_in_unit = 1;

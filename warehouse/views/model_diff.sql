-- What changed between two subjects, unit by unit, from a finished comparison run:
--   'new':     units of B whose best partner in A has r below the run's threshold;
--   'lost':    units of A whose best partner in B has r below it;
--   'changed': units of B whose best partner in A has r at or above it (the same activations,
--              near enough) but whose best explanation differs from the partner's: MiniLM
--              cosine similarity of the two below the run's `similarity`, or best headline
--              scores apart by at least its `score_change`. Needs both units explained.
-- change_size: 1 - r for new and lost; for changed the larger of 1 - similarity and the
-- absolute score change. Largest first. A unit constant over the corpus has no defined r and is
-- not listed (it is silent, not changed). Each row carries the unit's best explanation (highest
-- headline score over simulators) and its partner's, where they have one, with their
-- similarity and score change (B's score minus A's, for every kind of row).
-- depends: best_explanations
CREATE OR REPLACE VIEW model_diff AS
WITH best AS (
    SELECT subject_id, site, unit_index,
           arg_max(explanation_id, score) AS explanation_id,
           arg_max(explanation, score)    AS explanation,
           arg_max(explainer, score)      AS explainer,
           max(score)                     AS explanation_score
    FROM best_explanations
    WHERE sae_id IS NULL
    GROUP BY subject_id, site, unit_index
),
partners AS (  -- each unit's best partner, from either side
    SELECT m.run_id, m.kind, m.subject_b_id AS subject_id, m.site_b AS site,
           m.unit_b AS unit_index, m.subject_a_id AS other_subject_id, m.site_a AS other_site,
           m.unit_a AS partner_index, m.r AS partner_r,
           c.threshold, c.similarity AS similarity_threshold, c.score_change AS score_threshold
    FROM unit_matches m
    JOIN site_comparisons c USING (run_id, subject_a_id, subject_b_id, site_a, site_b)
    WHERE m.kind = 'best_b'
    UNION ALL
    SELECT m.run_id, m.kind, m.subject_a_id, m.site_a, m.unit_a, m.subject_b_id, m.site_b,
           m.unit_b, m.r, c.threshold, c.similarity, c.score_change
    FROM unit_matches m
    JOIN site_comparisons c USING (run_id, subject_a_id, subject_b_id, site_a, site_b)
    WHERE m.kind = 'best_a'
),
explained AS (
    SELECT p.*,
           b.explainer, b.explanation, b.explanation_score,
           o.explanation AS partner_explanation, o.explanation_score AS partner_score,
           array_cosine_similarity(eb.embedding, eo.embedding) AS explanation_similarity,
           -- B's score minus A's
           CASE WHEN p.kind = 'best_b' THEN b.explanation_score - o.explanation_score
                ELSE o.explanation_score - b.explanation_score END AS score_change
    FROM partners p
    LEFT JOIN best b USING (subject_id, site, unit_index)
    LEFT JOIN best o ON o.subject_id = p.other_subject_id AND o.site = p.other_site
                    AND o.unit_index = p.partner_index
    LEFT JOIN explanation_embeddings eb ON eb.explanation_id = b.explanation_id
    LEFT JOIN explanation_embeddings eo ON eo.explanation_id = o.explanation_id
                                       AND eo.model = eb.model
                                       AND eo.weights_hash = eb.weights_hash
),
changes AS (
    SELECT *,
           CASE WHEN partner_r < threshold THEN (CASE kind WHEN 'best_b' THEN 'new' ELSE 'lost' END)
                WHEN kind = 'best_b'
                     AND (explanation_similarity < similarity_threshold
                          OR abs(score_change) >= score_threshold) THEN 'changed'
           END AS change
    FROM explained
)
SELECT ch.run_id, ch.change, ch.subject_id, ch.site, ch.unit_index,
       CASE WHEN ch.change = 'changed'
            THEN greatest(coalesce(1 - ch.explanation_similarity, 0),
                          coalesce(abs(ch.score_change), 0))
            ELSE 1 - ch.partner_r END AS change_size,
       ch.partner_index, ch.partner_r, ch.other_subject_id, ch.other_site, ch.threshold,
       ch.explainer, ch.explanation, ch.explanation_score,
       ch.partner_explanation, ch.partner_score, ch.explanation_similarity, ch.score_change
FROM changes ch
JOIN runs r ON r.run_id = ch.run_id
WHERE r.status = 'finished' AND ch.change IS NOT NULL
ORDER BY ch.run_id, change_size DESC, ch.change, ch.site, ch.unit_index;

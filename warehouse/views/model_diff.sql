-- What changed between two subjects (or two SAEs), unit by unit, from a finished comparison
-- run's matches by activation (basis 'activation'; decoder matches of SAEs are not read here):
--   'new':     units of B whose best partner in A has r below the run's threshold;
--   'lost':    units of A whose best partner in B has r below it;
--   'changed': units of B matched one to one (the Hungarian matching) with a unit of A at r at
--              or above the threshold (the same activations, near enough) but whose best
--              explanation differs from that partner's: MiniLM cosine similarity of the two
--              below the run's `similarity`, or best headline scores apart by at least its
--              `score_change`. Needs both units explained.
-- change_size: 1 - r for new and lost; for changed the larger of 1 - similarity and the
-- absolute score change. Largest first. A unit constant over the corpus has no defined r and is
-- not listed (it is silent, not changed). Each row carries the unit's best explanation (highest
-- headline score over simulators) and its partner's (the best partner for new and lost, the
-- one-to-one partner for changed), where they have one, with their similarity and score change
-- (B's score minus A's, for every kind of row). sae_id and other_sae_id name the SAEs whose
-- latents the unit and its partner are (NULL: the subjects' own units).
-- depends: best_explanations
CREATE OR REPLACE VIEW model_diff AS
WITH best AS (
    SELECT subject_id, site, unit_index, coalesce(sae_id, '') AS sae,
           arg_max(explanation_id, score) AS explanation_id,
           arg_max(explanation, score)    AS explanation,
           arg_max(explainer, score)      AS explainer,
           max(score)                     AS explanation_score
    FROM best_explanations
    GROUP BY subject_id, site, unit_index, coalesce(sae_id, '')
),
matches AS (  -- activation matches with their run's thresholds
    SELECT m.*, c.threshold, c.similarity AS similarity_threshold,
           c.score_change AS score_threshold
    FROM unit_matches m
    JOIN site_comparisons c
        ON c.run_id = m.run_id AND c.subject_a_id = m.subject_a_id
       AND c.subject_b_id = m.subject_b_id AND c.site_a = m.site_a AND c.site_b = m.site_b
       AND c.sae_a_id IS NOT DISTINCT FROM m.sae_a_id
       AND c.sae_b_id IS NOT DISTINCT FROM m.sae_b_id
    WHERE m.basis = 'activation'
),
partners AS (  -- candidates: new and lost by best partner, changed by one-to-one partner
    SELECT run_id, 'new' AS candidate, subject_b_id AS subject_id, site_b AS site,
           unit_b AS unit_index, sae_b_id AS sae_id, subject_a_id AS other_subject_id,
           site_a AS other_site, sae_a_id AS other_sae_id, unit_a AS partner_index,
           r AS partner_r, threshold, similarity_threshold, score_threshold
    FROM matches WHERE kind = 'best_b' AND r < threshold
    UNION ALL
    SELECT run_id, 'lost', subject_a_id, site_a, unit_a, sae_a_id, subject_b_id, site_b,
           sae_b_id, unit_b, r, threshold, similarity_threshold, score_threshold
    FROM matches WHERE kind = 'best_a' AND r < threshold
    UNION ALL
    SELECT run_id, 'changed', subject_b_id, site_b, unit_b, sae_b_id, subject_a_id, site_a,
           sae_a_id, unit_a, r, threshold, similarity_threshold, score_threshold
    FROM matches WHERE kind = 'one_to_one' AND r >= threshold
),
explained AS (
    SELECT p.*,
           b.explainer, b.explanation, b.explanation_score,
           o.explanation AS partner_explanation, o.explanation_score AS partner_score,
           array_cosine_similarity(eb.embedding, eo.embedding) AS explanation_similarity,
           -- B's score minus A's
           CASE WHEN p.candidate = 'lost' THEN o.explanation_score - b.explanation_score
                ELSE b.explanation_score - o.explanation_score END AS score_change
    FROM partners p
    LEFT JOIN best b ON b.subject_id = p.subject_id AND b.site = p.site
                    AND b.unit_index = p.unit_index AND b.sae = coalesce(p.sae_id, '')
    LEFT JOIN best o ON o.subject_id = p.other_subject_id AND o.site = p.other_site
                    AND o.unit_index = p.partner_index AND o.sae = coalesce(p.other_sae_id, '')
    LEFT JOIN explanation_embeddings eb ON eb.explanation_id = b.explanation_id
    LEFT JOIN explanation_embeddings eo ON eo.explanation_id = o.explanation_id
                                       AND eo.model = eb.model
                                       AND eo.weights_hash = eb.weights_hash
),
changes AS (
    SELECT *,
           CASE WHEN candidate <> 'changed' THEN candidate
                WHEN explanation_similarity < similarity_threshold
                     OR abs(score_change) >= score_threshold THEN 'changed'
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
       ch.partner_explanation, ch.partner_score, ch.explanation_similarity, ch.score_change,
       ch.sae_id, ch.other_sae_id
FROM changes ch
JOIN runs r ON r.run_id = ch.run_id
WHERE r.status = 'finished' AND ch.change IS NOT NULL
ORDER BY ch.run_id, change_size DESC, ch.change, ch.site, ch.unit_index;

-- The contract for users and exports: one row per (unit, explanation, simulator, score kind),
-- for explanations of finished runs only. Failed explanations have no scores and do not appear.
CREATE OR REPLACE VIEW scored_explanations AS
SELECT
    u.unit_key,
    s.name            AS subject,
    u.subject_id,
    u.site,
    u.unit_index,
    u.sae_id,
    e.explanation_id,
    e.explainer,
    e.text            AS explanation,
    e.selected,
    sc.simulator,
    sc.kind           AS score_kind,
    sc.value          AS score,
    sc.reason         AS score_undefined_reason,
    sc.ci_low,
    sc.ci_high,
    sc.n_tokens,
    sc.n_windows,
    e.prompt_sha,
    e.run_id          AS explanation_run_id,
    sc.run_id         AS run_id,
    r.config_hash
FROM scores sc
JOIN explanations e USING (explanation_id)
JOIN units u ON u.unit_key = e.unit_key
JOIN subjects s ON s.subject_id = u.subject_id
JOIN runs r ON r.run_id = sc.run_id
WHERE r.status = 'finished' AND e.status = 'ok';

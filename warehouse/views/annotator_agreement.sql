-- Agreement between annotators, one row per (unit, agreement kind, annotator pair), ready to read:
-- the unit's subject, site and index, the two annotators, and for explainer pairs the two
-- explanation texts, so "do two annotators agree that this unit is about X?" is one query.
-- Only agreements written by finished runs; when several finished runs computed the same
-- (unit, kind, annotators), the newest run's row. Rows over all units have unit_key NULL.
-- role says who the annotators are: 'simulators' (names of simulators), 'explainers' (names of
-- explainers; text_a/text_b are their selected explanations of the unit), 'annotators'
-- (explainer|simulator labels, across units), 'unit' (clarity: no annotators).
CREATE OR REPLACE VIEW annotator_agreement AS
WITH finished AS (
    SELECT a.*, r.started_at
    FROM agreements a
    JOIN runs r USING (run_id)
    WHERE r.status = 'finished'
    QUALIFY row_number() OVER (
        PARTITION BY a.unit_key, a.kind, a.annotators ORDER BY r.started_at DESC, a.run_id DESC
    ) = 1
),
texts AS (
    -- Selected explanations; when a unit has several of one explainer (runs with different
    -- prompts), the one from the agreement's own run is preferred, else the newest run's.
    SELECT e.unit_key, e.explainer, e.text, e.run_id, r.started_at
    FROM explanations e
    JOIN runs r USING (run_id)
    WHERE e.status = 'ok' AND e.selected
),
labelled AS (
    SELECT
        f.*,
        CASE
            WHEN f.kind LIKE 'explainer\_%' ESCAPE '\' THEN 'explainers'
            WHEN f.kind LIKE '%simulators%' THEN 'simulators'
            WHEN f.kind LIKE 'spearman\_%' ESCAPE '\' THEN 'annotators'
            WHEN f.kind = 'clarity' THEN 'unit'
            ELSE 'other'
        END AS role
    FROM finished f
)
SELECT
    l.unit_key,
    s.name              AS subject,
    u.subject_id,
    u.site,
    u.unit_index,
    u.sae_id,
    l.kind,
    l.role,
    l.annotators,
    l.annotators[1]     AS annotator_a,
    l.annotators[2]     AS annotator_b,
    CASE WHEN l.role = 'explainers' THEN (
        SELECT t.text FROM texts t
        WHERE t.unit_key = l.unit_key AND t.explainer = l.annotators[1]
        ORDER BY (t.run_id = l.run_id) DESC, t.started_at DESC, t.run_id DESC
        LIMIT 1
    ) END               AS text_a,
    CASE WHEN l.role = 'explainers' THEN (
        SELECT t.text FROM texts t
        WHERE t.unit_key = l.unit_key AND t.explainer = l.annotators[2]
        ORDER BY (t.run_id = l.run_id) DESC, t.started_at DESC, t.run_id DESC
        LIMIT 1
    ) END               AS text_b,
    l.value,
    l.reason            AS value_undefined_reason,
    l.n,
    c.value             AS unit_clarity,
    l.run_id
FROM labelled l
LEFT JOIN units u ON u.unit_key = l.unit_key
LEFT JOIN subjects s ON s.subject_id = u.subject_id
LEFT JOIN finished c ON c.unit_key = l.unit_key AND c.kind = 'clarity';

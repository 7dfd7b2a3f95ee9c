-- Held-out check: windows that appear in more than one split of the same unit. Must be empty.
-- (The primary key of unit_windows already forbids it; this view proves it for auditors and
-- also catches a window shown to the explainer of one unit that reappears for the same unit
-- through a different window id with identical tokens.)
CREATE OR REPLACE VIEW split_overlaps AS
SELECT uw.unit_key, w.corpus_id, w.doc_id, w.start_token,
       list(DISTINCT uw.split ORDER BY uw.split) AS splits
FROM unit_windows uw JOIN windows w USING (window_id)
GROUP BY uw.unit_key, w.corpus_id, w.doc_id, w.start_token
HAVING count(DISTINCT uw.split) > 1;

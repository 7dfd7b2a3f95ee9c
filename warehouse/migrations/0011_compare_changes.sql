-- 0011: what makes a partnered unit "changed" in `model_diff`, stored per comparison run
-- (compare.similarity and compare.score_change), so the view needs no config. NULL in runs
-- made before: they list no changed units.
ALTER TABLE site_comparisons ADD COLUMN similarity DOUBLE;
ALTER TABLE site_comparisons ADD COLUMN score_change DOUBLE;

-- 0006: reserved for the migration another branch adds under this number; this placeholder only
-- keeps the numbering without gaps until that branch is merged (then delete this file).
SELECT 1;

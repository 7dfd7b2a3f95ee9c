-- 0012: reserved for the budget tables (unit_budget); this file holds its place until they land.
SELECT 1;

-- 0002: how many attempts beyond the first each LLM call needed (429, 5xx, timeouts,
-- connection errors). Rows written before this migration had no such figure: they read 0.
ALTER TABLE llm_calls ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;

-- What each run spent on each unit: one row per (run, unit) that the run decided a budget for
-- (unit_budget) or made an LLM call for (llm_calls.unit_key). The decision columns are NULL
-- for runs without a budget. llm_calls, prompt_tokens, completion_tokens, cost_usd and
-- latency_ms count the calls the run made (cache hits excluded: they cost nothing);
-- cached_calls the calls it answered from the cache. simulated_windows: the simulations
-- (explanation x simulator x window) this run wrote for the unit's explanations; work reused
-- from an earlier run is not counted again.
CREATE OR REPLACE VIEW unit_spend AS
WITH calls AS (
    SELECT run_id, unit_key,
           count(*) FILTER (WHERE NOT cache_hit)                         AS llm_calls,
           count(*) FILTER (WHERE cache_hit)                             AS cached_calls,
           coalesce(sum(prompt_tokens) FILTER (WHERE NOT cache_hit), 0)  AS prompt_tokens,
           coalesce(sum(completion_tokens) FILTER (WHERE NOT cache_hit), 0) AS completion_tokens,
           sum(cost_usd) FILTER (WHERE NOT cache_hit)                    AS cost_usd,
           coalesce(sum(latency_ms), 0)                                  AS latency_ms
    FROM llm_calls
    WHERE unit_key IS NOT NULL
    GROUP BY run_id, unit_key
),
simulated AS (
    SELECT s.run_id, e.unit_key, count(*) AS simulated_windows
    FROM simulations s
    JOIN explanations e ON e.explanation_id = s.explanation_id
    GROUP BY s.run_id, e.unit_key
),
spent AS (
    SELECT run_id, unit_key FROM unit_budget
    UNION
    SELECT run_id, unit_key FROM calls
)
SELECT
    p.run_id, p.unit_key, u.site, u.unit_index,
    b.escalated, b.reason, b.cheap_score, b.cheap_explainer, b.cheap_simulator, b.threshold,
    coalesce(c.llm_calls, 0)         AS llm_calls,
    coalesce(c.cached_calls, 0)      AS cached_calls,
    coalesce(c.prompt_tokens, 0)     AS prompt_tokens,
    coalesce(c.completion_tokens, 0) AS completion_tokens,
    c.cost_usd,
    coalesce(c.latency_ms, 0)        AS latency_ms,
    coalesce(s.simulated_windows, 0) AS simulated_windows
FROM spent p
LEFT JOIN units u ON u.unit_key = p.unit_key
LEFT JOIN unit_budget b ON b.run_id = p.run_id AND b.unit_key = p.unit_key
LEFT JOIN calls c ON c.run_id = p.run_id AND c.unit_key = p.unit_key
LEFT JOIN simulated s ON s.run_id = p.run_id AND s.unit_key = p.unit_key;

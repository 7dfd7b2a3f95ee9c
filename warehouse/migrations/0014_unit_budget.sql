-- 0014: a budget ([budget] escalate). Which units each run escalated to its escalated
-- annotators and why, and the unit each LLM call worked for. Calls stored before this
-- migration, and calls of no single unit (an endpoint's preflight check), have no unit: NULL.

-- One row per (run, live unit) of a run with a budget: the decision and what it was made on.
CREATE TABLE unit_budget (
    run_id          VARCHAR NOT NULL,
    unit_key        VARCHAR NOT NULL,
    escalated       BOOLEAN NOT NULL,
    reason          VARCHAR NOT NULL,      -- see neuroscribe.budget.decide.Reason
    cheap_score     DOUBLE,                -- best cheap headline score; NULL: undefined
    cheap_explainer VARCHAR,               -- whose explanation scored it
    cheap_simulator VARCHAR,               -- under which simulator
    spread          DOUBLE,                -- best - worst of the cheap explainers' best scores
    threshold       DOUBLE NOT NULL,       -- budget.below
    disagree        DOUBLE,                -- budget.disagree
    escalated_annotators VARCHAR[] NOT NULL, -- the run's escalated explainers and simulators
    decided_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, unit_key)
);

ALTER TABLE llm_calls ADD COLUMN unit_key VARCHAR;

-- 0003: agreements get an identity. A row is one statistic (unit, kind, annotators) as computed
-- by one run, keyed by (run_id, statistic_key), where statistic_key is the md5 of the unit key
-- ('' for statistics over all units), the kind and the annotators, joined by chr(31)
-- (neuroscribe.warehouse.annotations.statistic_key computes the same). A repeated or retried write of a
-- run adds nothing. DuckDB cannot add a primary key to a table that has rows, so the table is
-- rebuilt; rows that an earlier schema stored twice for the same run keep one copy.

CREATE TABLE agreements_keyed (
    unit_key      VARCHAR,               -- NULL for statistics over all units
    kind          VARCHAR NOT NULL,
    annotators    VARCHAR[] NOT NULL,
    value         DOUBLE,
    reason        VARCHAR,
    n             INTEGER NOT NULL,
    run_id        VARCHAR NOT NULL,
    statistic_key VARCHAR NOT NULL,      -- which statistic: md5(unit_key, kind, annotators)
    PRIMARY KEY (run_id, statistic_key)
);

INSERT INTO agreements_keyed
SELECT unit_key, kind, annotators, value, reason, n, run_id, statistic_key
FROM (
    SELECT *,
           md5(coalesce(unit_key, '') || chr(31) || kind || chr(31)
               || array_to_string(annotators, chr(31))) AS statistic_key
    FROM agreements
)
QUALIFY row_number() OVER (
    PARTITION BY run_id, statistic_key ORDER BY value NULLS LAST, n, reason NULLS LAST
) = 1;

DROP TABLE agreements;

ALTER TABLE agreements_keyed RENAME TO agreements;

"""The ledger of LLM calls (``llm_calls``) and the rows that prime the response cache from it.

Every call and every cache hit is a row. A call that succeeded and was not itself a cache hit
holds the raw response that the response cache (``neuroscribe.llm.cache``) answers with, so a
run primed from the warehouse makes no call that any run made before.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import duckdb

from neuroscribe.llm.base import LLMCall
from neuroscribe.llm.cache import prime_cache
from neuroscribe.warehouse.rows import insert_rows, now, transaction


def save_llm_calls(con: duckdb.DuckDBPyConnection, run_id: str, calls: Iterable[LLMCall]) -> int:
    """Append calls of a run to the ledger (every row is kept); returns the rows added."""
    with transaction(con):
        return insert_rows(con, "llm_calls", llm_call_rows(run_id, calls))


def llm_call_rows(run_id: str, calls: Iterable[LLMCall]) -> list[dict[str, Any]]:
    """The ``llm_calls`` rows of these calls of a run, stamped with the time now."""
    called_at = now()
    return [
        {
            **c.model_dump(),
            "params": json.dumps(c.params, sort_keys=True, default=str),
            "run_id": run_id,
            "called_at": called_at,
        }
        for c in calls
    ]


PRIME_CACHE_SQL = (
    "SELECT request_hash, response, prompt_tokens, completion_tokens FROM llm_calls "
    "WHERE status = 'ok' AND NOT cache_hit AND response IS NOT NULL"
)
"""The ledger rows that prime the cache: ok calls, not themselves cache hits, with a response."""


def cache_rows(
    con: duckdb.DuckDBPyConnection,
) -> list[tuple[str, str | None, int | None, int | None]]:
    """``(request_hash, response, prompt_tokens, completion_tokens)`` of every ledger row that
    can answer a later call (``PRIME_CACHE_SQL``), as ``ResponseCache.prime`` takes them."""
    return [
        (request_hash, response, prompt_tokens, completion_tokens)
        for request_hash, response, prompt_tokens, completion_tokens in con.execute(
            PRIME_CACHE_SQL
        ).fetchall()
    ]


def prime_cache_from_warehouse(con: duckdb.DuckDBPyConnection) -> int:
    """Prime the process-wide response cache from an open warehouse connection; returns the
    entries added or replaced."""
    return prime_cache(cache_rows(con))

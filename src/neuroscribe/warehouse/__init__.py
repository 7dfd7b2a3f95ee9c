"""The DuckDB warehouse: the only place that holds SQL (with the ``.sql`` files of
``warehouse/``).

- ``db``: opening (one writer, read-only readers) and migrations; ``views``: the views in
  dependency order, and the macros they use.
- ``rows``: inserts keyed by content ids, adoption of unfinished runs' rows, transactions, and
  records read by column name.
- ``runs``: the run lifecycle. ``collection``: subjects, windows, units and their splits.
  ``annotations``: explanations, simulations, scores, agreements. ``calls``: the LLM-call ledger
  and the response cache primed from it. ``columnar``: a Dask chunk's units and rows as Arrow
  tables, read and stored in bulk.
- ``reads``: read-only questions of the CLI and flows (tables, summaries, the control
  comparison, user SQL). ``embeddings``, ``exports``, ``report_rows``, ``handoffs``: the queries
  behind search, exports, reports and worker handoffs.
"""

from neuroscribe.warehouse.db import (
    DEFAULT_WAREHOUSE,
    WarehouseError,
    check_writable,
    connect,
    open_readonly,
    resolve_path,
)

__all__ = [
    "DEFAULT_WAREHOUSE", "WarehouseError", "check_writable", "connect", "open_readonly",
    "resolve_path",
]

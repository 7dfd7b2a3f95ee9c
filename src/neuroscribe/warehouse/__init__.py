"""The DuckDB warehouse: connections, migrations, views, and record <-> row conversion."""

from neuroscribe.warehouse.db import (
    DEFAULT_WAREHOUSE,
    WarehouseError,
    connect,
    open_readonly,
    resolve_path,
)

__all__ = ["DEFAULT_WAREHOUSE", "WarehouseError", "connect", "open_readonly", "resolve_path"]

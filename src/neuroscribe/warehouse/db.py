"""Opening the warehouse: one writer at a time, readers read-only, migrations applied on open.

DuckDB lets one process write a file; while it does, no other process can open the file, not
even read-only. Errors from that lock become a WarehouseError that says so.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

import duckdb

from neuroscribe.warehouse.views import ViewOrderError, apply_views

DEFAULT_WAREHOUSE = Path("warehouse") / "neuroscribe.duckdb"
ENV_VAR = "NEUROSCRIBE_WAREHOUSE"
MIGRATION_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class WarehouseError(RuntimeError):
    """The warehouse cannot be opened or used; the message says why."""


def resolve_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The warehouse file: the argument, else $NEUROSCRIBE_WAREHOUSE, else the default."""
    if path:
        return Path(path)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_WAREHOUSE


def sql_dir(kind: str) -> Path:
    """``migrations`` or ``views``: from the installed package, else from the repository."""
    packaged = resources.files("neuroscribe").joinpath("_data", kind)
    if packaged.is_dir():
        return Path(str(packaged))
    repo = Path(__file__).resolve().parents[3] / "warehouse" / kind
    if repo.is_dir():
        return repo
    raise WarehouseError(f"cannot find the warehouse's {kind} folder")


def _explain_lock(path: Path, err: Exception) -> WarehouseError:
    msg = str(err)
    if "lock" in msg.lower() or "Conflicting" in msg:
        return WarehouseError(
            f"warehouse {path} is locked by another process (a running flow?): DuckDB allows one "
            f"writer and no readers while it writes. Wait for it to finish. ({msg.splitlines()[0]})"
        )
    return WarehouseError(f"cannot open warehouse {path}: {msg.splitlines()[0]}")


def check_writable(path: str | os.PathLike[str] | None = None) -> Path:
    """Check, without creating anything, that the warehouse can be opened for writing: an
    existing file is opened (its lock, its schema); a new one needs a writable folder (or one
    that can be made). Returns the path. So bad input found later leaves no empty warehouse."""
    p = resolve_path(path)
    if p.exists():
        connect(p).close()
        return p
    folder = p.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise WarehouseError(f"warehouse {p} cannot be created: {folder} is not a writable folder")
    return p


def connect(path: str | os.PathLike[str] | None = None) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the warehouse for writing, and bring its schema up to date."""
    p = resolve_path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WarehouseError(f"cannot create the warehouse folder {p.parent}: {e.strerror}") from e
    if p.exists() and not os.access(p, os.W_OK) or not os.access(p.parent, os.W_OK):
        raise WarehouseError(f"warehouse {p} is not writable")
    try:
        con = duckdb.connect(str(p))
    except duckdb.Error as e:
        raise _explain_lock(p, e) from e
    migrate(con)
    return con


def open_readonly(path: str | os.PathLike[str] | None = None) -> duckdb.DuckDBPyConnection:
    """Open an existing warehouse read-only (writes through it fail)."""
    p = resolve_path(path)
    if not p.is_file():
        raise WarehouseError(
            f"no warehouse at {p} (run `neuroscribe run` first, or pass --warehouse)"
        )
    try:
        return duckdb.connect(str(p), read_only=True)
    except duckdb.Error as e:
        raise _explain_lock(p, e) from e


def migrations() -> list[tuple[int, str, str]]:
    """(number, file name, SQL) of every migration, in order."""
    found = []
    for f in sorted(sql_dir("migrations").iterdir()):
        m = MIGRATION_RE.match(f.name)
        if m:
            found.append((int(m.group(1)), f.name, f.read_text(encoding="utf-8")))
    numbers = [n for n, _, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise WarehouseError(f"migrations must be numbered 0001, 0002, ... without gaps: {numbers}")
    return found


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations not yet applied (each in its own transaction), then the views (in
    the order of their declared dependencies, see ``neuroscribe.warehouse.views``)."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    done = {v for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for number, name, sql in migrations():
        if number in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [number, name]
            )
            con.execute("COMMIT")
        except duckdb.Error as e:
            con.execute("ROLLBACK")
            raise WarehouseError(f"migration {name} failed: {e}") from e
        applied.append(name)
    try:
        apply_views(con, sql_dir("views"))
    except ViewOrderError as e:
        raise WarehouseError(f"cannot create the views: {e}") from e
    return applied

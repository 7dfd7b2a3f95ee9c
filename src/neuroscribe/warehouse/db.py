"""Opening the warehouse: one writer at a time, readers read-only, migrations applied on open.

DuckDB lets one process hold a file for writing; while any process holds it (even read-only),
no other can open it for writing, and while a writer holds it, no other can read it. Flows hold
the file only briefly around each write, so opening waits for the lock (bounded, with backoff)
and, when it gives up, says which program holds the file (DuckDB names it and its PID).

Readers run with external access disabled and their configuration locked: a user's SQL through
``open_readonly`` cannot attach databases, copy to or read files, load extensions or change
settings.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from neuroscribe.env import env_seconds
from neuroscribe.warehouse.views import ViewOrderError, apply_views

DEFAULT_WAREHOUSE = Path("warehouse") / "neuroscribe.duckdb"
ENV_VAR = "NEUROSCRIBE_WAREHOUSE"
MIGRATION_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
LOCK_WAIT_ENV = "NEUROSCRIBE_LOCK_WAIT"
WRITER_WAIT_S = 60.0
"""How long a writer waits for other processes to let go of the file, unless $NEUROSCRIBE_LOCK_WAIT
(seconds) or the caller says otherwise: long enough for a reader's query or a report."""
READER_WAIT_S = 10.0
"""How long a reader waits: flows hold the file for a moment between writes, and a person at
the command line is told who holds it rather than left waiting."""
HOLDER_RE = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")

READONLY_CONFIG: dict[str, Any] = {
    "enable_external_access": False,  # no ATTACH, COPY, read_csv/read_text/..., INSTALL/LOAD
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
    "python_enable_replacements": False,  # no reading the caller's Python variables as tables
    "lock_configuration": True,  # last: no SET or RESET can undo the above
}
"""Settings of every read-only connection. Reads (reports, exports, search) need none of what
they forbid: exports write their files from Python, not with COPY."""


class WarehouseError(RuntimeError):
    """The warehouse cannot be opened or used; the message says why."""


class WarehouseLockedError(WarehouseError):
    """Another process held the warehouse file for longer than the wait allowed. ``holder`` is
    DuckDB's description of it (``program (PID n)``), or None when DuckDB did not tell."""

    def __init__(self, message: str, holder: str | None) -> None:
        super().__init__(message)
        self.holder = holder


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


def lock_wait(wait_s: float | None, default: float) -> float:
    """Seconds to wait for the file's lock: ``wait_s``, else $NEUROSCRIBE_LOCK_WAIT, else
    ``default``."""
    try:
        return env_seconds(wait_s, LOCK_WAIT_ENV, default)
    except ValueError as e:
        raise WarehouseError(str(e)) from None


def _is_lock_error(err: duckdb.Error) -> bool:
    msg = str(err)
    return "Could not set lock" in msg or "Conflicting lock" in msg


def lock_holder(err: Exception) -> str | None:
    """``program (PID n)`` of the process holding the file, from DuckDB's lock error."""
    m = HOLDER_RE.search(str(err))
    return f"{Path(m['program']).name} (PID {m['pid']})" if m else None


def open_waiting(
    path: Path,
    *,
    read_only: bool,
    wait_s: float,
    config: dict[str, Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` that retries while another process holds the file's lock, backing off
    from 50 ms to 1 s, for at most ``wait_s`` seconds; then WarehouseLockedError naming the
    holder. Any other error is a WarehouseError at once."""
    deadline, delay = time.monotonic() + wait_s, 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.Error as e:
            first = str(e).splitlines()[0]
            if not _is_lock_error(e):
                raise WarehouseError(f"cannot open warehouse {path}: {first}") from e
            left = deadline - time.monotonic()
            if left <= 0:
                holder = lock_holder(e)
                who = f"{holder} holds it" if holder else "another process holds it"
                raise WarehouseLockedError(
                    f"warehouse {path} is busy: {who} (a notebook, the DuckDB CLI, a query or a "
                    f"running flow?), and it was not let go within {wait_s:g} s. Close it, or "
                    f"wait longer with ${LOCK_WAIT_ENV}=<seconds>.",
                    holder,
                ) from e
            sleep(min(delay, left))
            delay = min(delay * 2, 1.0)


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


def connect(
    path: str | os.PathLike[str] | None = None, *, wait_s: float | None = None
) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the warehouse for writing, and bring its schema up to date.
    Waits up to ``wait_s`` seconds (default: ``lock_wait``) for other processes holding the
    file; refuses a DuckDB file that is not a neuroscribe warehouse."""
    p = resolve_path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WarehouseError(f"cannot create the warehouse folder {p.parent}: {e.strerror}") from e
    if p.exists() and not os.access(p, os.W_OK) or not os.access(p.parent, os.W_OK):
        raise WarehouseError(f"warehouse {p} is not writable")
    con = open_waiting(p, read_only=False, wait_s=lock_wait(wait_s, WRITER_WAIT_S))
    try:
        migrate(con)
    except BaseException:
        con.close()  # a refused or failed migration must not keep the file locked
        raise
    return con


def open_readonly(
    path: str | os.PathLike[str] | None = None, *, wait_s: float | None = None
) -> duckdb.DuckDBPyConnection:
    """Open an existing warehouse read-only, with ``READONLY_CONFIG``: writes, file access,
    extensions and settings are refused. Waits up to ``wait_s`` seconds (default:
    ``lock_wait``) for a writer to let go."""
    p = resolve_path(path)
    if not p.is_file():
        raise WarehouseError(
            f"no warehouse at {p} (run `neuroscribe run` first, or pass --warehouse)"
        )
    return open_waiting(
        p, read_only=True, wait_s=lock_wait(wait_s, READER_WAIT_S), config=READONLY_CONFIG
    )


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


def _tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Tables and views of the connection's database, by name."""
    return [
        name
        for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_catalog = current_database() ORDER BY table_name"
        ).fetchall()
    ]


def check_is_warehouse(con: duckdb.DuckDBPyConnection) -> None:
    """Raise WarehouseError, naming the file, when the database holds tables or views but no
    ``schema_migrations``: someone else's DuckDB file, which migrations must not touch."""
    tables = _tables(con)
    if not tables or "schema_migrations" in tables:
        return
    (path,) = con.execute(
        "SELECT coalesce(path, database_name) FROM duckdb_databases()"
        " WHERE database_name = current_database()"
    ).fetchone() or ("the database",)
    shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
    raise WarehouseError(
        f"{path} is not a neuroscribe warehouse (it holds {shown} and no schema_migrations); "
        "nothing was written to it. Give a new file or an existing warehouse."
    )


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations not yet applied, each in one transaction with its entry in
    ``schema_migrations`` (a failed one leaves nothing), then the views (one transaction, in the
    order of their declared dependencies, see ``neuroscribe.warehouse.views``). A database that
    is not a warehouse and not empty is refused before anything is written."""
    check_is_warehouse(con)
    done: set[int] = set()
    if "schema_migrations" in _tables(con):
        done = {v for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for number, name, sql in migrations():
        if number in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            # inside the first migration's transaction, so a failed 0001 leaves an empty file
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
            )
            con.execute(sql)
            con.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [number, name]
            )
            con.execute("COMMIT")
        except duckdb.Error as e:
            con.execute("ROLLBACK")
            raise WarehouseError(f"migration {name} failed: {str(e).splitlines()[0]}") from e
        applied.append(name)
    con.execute("BEGIN TRANSACTION")
    try:
        apply_views(con, sql_dir("views"))
        con.execute("COMMIT")
    except (ViewOrderError, duckdb.Error) as e:
        con.execute("ROLLBACK")
        raise WarehouseError(f"cannot create the views: {str(e).splitlines()[0]}") from e
    return applied

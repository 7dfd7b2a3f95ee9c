"""Workers hand their results to the single warehouse writer as Parquet.

DuckDB allows one writing process per file, so workers (other processes, other machines) never
open the warehouse. A worker writes a *handoff*: a folder ``<name>.handoff`` holding one Parquet
file per table, with exactly the rows the warehouse would get (built by the same
``warehouse.collection.collection_rows``, typed by the warehouse's own schema), and
``manifest.json`` with each file's row count and sha256. The folder is written under a
temporary name starting with ``.`` and renamed when complete, so a reader sees a whole handoff
or none.

The writer (``neuroscribe ingest``) loads every complete handoff in one transaction each, in
name order, and records it in ``handoffs`` under a hash of its manifest: offering the same
handoff again changes nothing. Temporary folders (a worker still writing, or killed) are
skipped; a handoff whose files do not match its manifest is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from neuroscribe import __version__
from neuroscribe.config import RunConfig
from neuroscribe.errors import BadInput
from neuroscribe.warehouse import collection, rows, runs
from neuroscribe.warehouse.db import migrate
from neuroscribe.warehouse.handoffs import ingested_ids, record_handoff

if TYPE_CHECKING:  # importing the collect stage loads torch
    from neuroscribe.collect import CollectResult

SUFFIX = ".handoff"
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
COLLECT_TABLES = ("runs", "subjects", "windows", "units", "unit_windows")
"""Tables of a collection handoff, in the order they are written."""


class HandoffError(BadInput):
    """A handoff folder cannot be written or read; the message names the problem."""


def write_collection(
    directory: str | os.PathLike[str],
    run_id: str,
    cfg: RunConfig,
    result: CollectResult,
    started_at: datetime,
) -> Path:
    """Write a finished collection as a handoff in ``directory`` (created); returns its path."""
    mem = duckdb.connect()  # an empty warehouse in memory: the schema types the Parquet files
    try:
        migrate(mem)
        runs.start_run(mem, run_id, cfg)
        runs.set_stage(mem, run_id, "collect")
        collected = collection.collection_tables(
            run_id, result.subject, result.corpus_id, result.windows, result.tables
        )
        for table, arrow in collected.items():
            rows.insert_arrow(mem, table, arrow)
        runs.finish_run(mem, run_id, "finished")
        runs.set_started_at(mem, run_id, started_at)
        tables = {t: rows.table_arrow(mem, t) for t in COLLECT_TABLES}
    finally:
        mem.close()
    return _write(Path(directory), f"collect-{run_id}", "collect", run_id, cfg, tables)


def _write(
    directory: Path, name: str, kind: str, run_id: str, cfg: RunConfig, tables: dict[str, pa.Table]
) -> Path:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HandoffError(f"cannot create the handoff folder {directory}: {e.strerror}") from e
    final = directory / f"{name}{SUFFIX}"
    if final.exists():
        raise HandoffError(f"handoff {final} already exists")
    tmp = directory / f".{name}{SUFFIX}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        files = {}
        for table, arrow in tables.items():
            path = tmp / f"{table}.parquet"
            pq.write_table(arrow, path)
            files[table] = {
                "file": path.name,
                "rows": arrow.num_rows,
                "sha256": _sha256(path),
            }
        manifest = {
            "format": FORMAT_VERSION,
            "kind": kind,
            "name": name,
            "run_id": run_id,
            "config_hash": cfg.config_hash,
            "tables": files,
            "neuroscribe_version": __version__,
            "created_at": datetime.now(UTC).isoformat(),
        }
        with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)  # atomic: readers see the whole handoff or nothing
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Handoff:
    path: Path
    handoff_id: str
    manifest: dict[str, Any]


@dataclass
class IngestReport:
    ingested: dict[str, dict[str, int]] = field(default_factory=dict)
    """Handoff name -> table -> rows that were new to the warehouse."""
    already: list[str] = field(default_factory=list)
    """Handoffs ingested before (nothing done)."""
    partial: list[str] = field(default_factory=list)
    """Temporary folders skipped (a worker still writing, or one that died)."""


def scan(directory: str | os.PathLike[str]) -> tuple[list[Handoff], list[str]]:
    """The complete handoffs in ``directory`` (checked against their manifests), in name
    order, and the names of the temporary folders. Raises HandoffError on a handoff whose
    files do not match its manifest."""
    root = Path(directory)
    if not root.is_dir():
        raise HandoffError(f"handoff folder {root} does not exist or is not a folder")
    complete, partial = [], []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") and ".tmp-" in entry.name:
            partial.append(entry.name)
        elif entry.is_dir() and entry.name.endswith(SUFFIX):
            complete.append(_check(entry))
    return complete, partial


def _check(path: Path) -> Handoff:
    manifest_path = path / MANIFEST
    try:
        raw = manifest_path.read_bytes()
        manifest = json.loads(raw)
    except (OSError, ValueError) as e:
        raise HandoffError(f"handoff {path} has no readable {MANIFEST} ({e})") from e
    if manifest.get("format") != FORMAT_VERSION or manifest.get("kind") != "collect":
        raise HandoffError(
            f"handoff {path} is of format {manifest.get('format')!r}, kind "
            f"{manifest.get('kind')!r}; this neuroscribe reads format {FORMAT_VERSION}, collect"
        )
    tables = manifest.get("tables", {})
    if sorted(tables) != sorted(COLLECT_TABLES):
        raise HandoffError(f"handoff {path} lists tables {sorted(tables)}, not {COLLECT_TABLES}")
    for meta in tables.values():
        file = path / meta["file"]
        if not file.is_file() or _sha256(file) != meta["sha256"]:
            raise HandoffError(
                f"handoff {path}: {meta['file']} is missing or does not match its checksum "
                "in the manifest (damaged in transfer?); nothing was ingested"
            )
    return Handoff(path, hashlib.sha256(raw).hexdigest()[:32], manifest)


def ingest(con: duckdb.DuckDBPyConnection, directory: str | os.PathLike[str]) -> IngestReport:
    """Load every complete handoff in ``directory`` not loaded before, one transaction each."""
    handoffs, partial = scan(directory)
    report = IngestReport(partial=partial)
    done = ingested_ids(con)
    for h in handoffs:
        name = h.path.name
        if h.handoff_id in done:
            report.already.append(name)
            continue
        tables = {
            t: pq.read_table(h.path / h.manifest["tables"][t]["file"]) for t in COLLECT_TABLES
        }
        for t, arrow in tables.items():
            if arrow.num_rows != h.manifest["tables"][t]["rows"]:
                raise HandoffError(
                    f"handoff {h.path}: {t} has {arrow.num_rows} rows, "
                    f"the manifest says {h.manifest['tables'][t]['rows']}"
                )
        with rows.transaction(con):
            collection.check_same_collection_arrow(con, tables["unit_windows"], h.path)
            added = {t: rows.insert_arrow(con, t, arrow) for t, arrow in tables.items()}
            record_handoff(con, h.handoff_id, name, h.manifest, added)
        report.ingested[name] = added
        done.add(h.handoff_id)
    return report


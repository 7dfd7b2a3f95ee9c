"""The manifest written next to every export, and atomic file writing.

An export is written to a temporary file in the target folder and renamed into place only once
complete, so a reader never sees half a file, and an interrupted export leaves no output.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from neuroscribe.errors import BadInput


class ExportError(BadInput):
    """An export cannot be made; the message says why."""


class OutputExistsError(ExportError, FileExistsError):
    """The output (or its manifest) exists and ``force`` was not given."""


class ExportManifest(BaseModel):
    """What an export holds and where it came from; written as ``<output>.manifest.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    output: str
    """File name of the export (the manifest sits in the same folder)."""
    format: str
    """``parquet``, ``jsonl``, ``csv`` or ``neuronpedia``."""
    source: str = "scored_explanations"
    """The warehouse view the rows come from."""
    rows: int
    """Rows (lines for JSON Lines formats) in the output, header excluded."""
    sha256: str
    """sha256 of the output file's bytes."""
    filters: dict[str, Any]
    """The filters the export was made with (None = not filtered)."""
    run_ids: tuple[str, ...]
    """Runs that wrote the exported scores."""
    explanation_run_ids: tuple[str, ...]
    """Runs that wrote the exported explanations."""
    config_hashes: tuple[str, ...]
    """Config hashes of the scoring runs."""
    prompt_shas: tuple[str, ...]
    """Content hashes of the explainer prompts (the shuffled control has none)."""
    columns: tuple[str, ...]
    """Column names (top-level keys for JSON Lines formats)."""
    neuroscribe_version: str
    created_at: str
    """UTC time, ISO 8601."""


def manifest_path(out: Path) -> Path:
    """``<out>.manifest.json``."""
    return out.with_name(out.name + ".manifest.json")


def check_writable(out: Path, force: bool) -> None:
    """Refuse a folder as the output, and an existing output or manifest unless ``force``;
    create the parent folder."""
    for p in (out, manifest_path(out)):
        if p.is_dir():
            raise ExportError(
                f"{p} is a folder; give the export a file name, e.g. {out / 'scores.parquet'}"
                if p == out
                else f"{p} is a folder, where the export's manifest would go; remove it or "
                "give the export another name"
            )
        if p.exists() and not force:
            raise OutputExistsError(f"{p} already exists; use --force to overwrite it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create the folder {out.parent}: {e.strerror}") from e


@contextmanager
def atomic_path(out: Path) -> Iterator[Path]:
    """A temporary path next to ``out``; renamed onto ``out`` on success, removed on error.

    The file is created with mode 0666 less the umask (usually 0644), as ``open`` would create
    ``out`` itself; ``tempfile.mkstemp`` would give 0600, unreadable to anyone else."""
    while True:
        tmp = out.with_name(f".{out.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:  # another writer's temporary file: draw another name
            continue
    try:
        yield tmp
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_manifest(out: Path, manifest: ExportManifest) -> Path:
    """Write the manifest atomically next to ``out``; return its path."""
    path = manifest_path(out)
    with atomic_path(path) as tmp:
        tmp.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path

"""Checkpoints of a collection's streaming state, so that an interrupted run continues.

One file per collection, named by a key that hashes the run config, the subject's weights, the
SAE and the corpora's ids (a file corpus's id holds a hash of its bytes): a checkpoint is never
resumed under different settings. The state also holds a chained hash of the windows read, which
resuming compares with the windows it re-reads (``CorpusPass.skip_read``). Written atomically
(temporary file, then rename): a run killed while writing leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from neuroscribe.env import env_seconds
from neuroscribe.models import cache_dir

VERSION = 2
SECONDS_ENV = "NEUROSCRIBE_CHECKPOINT_SECONDS"
EVERY_SECONDS = 60.0
"""At least this long between two checkpoints, unless $NEUROSCRIBE_CHECKPOINT_SECONDS or the caller
says otherwise. A checkpoint of a catalogue's state is hundreds of megabytes (about 0.7 s for
MiniLM's 9,216 neurons): a minute between them keeps their cost near 1% of a fast forward pass,
and a kill loses at most a minute of it."""


def checkpoint_seconds(seconds: float | None) -> float:
    """Seconds between checkpoints: ``seconds``, else $NEUROSCRIBE_CHECKPOINT_SECONDS, else
    ``EVERY_SECONDS``. ValueError on an environment value that is not a number."""
    return env_seconds(seconds, SECONDS_ENV, EVERY_SECONDS)


def checkpoint_path(key: str, directory: str | Path | None = None) -> Path:
    root = Path(directory) if directory is not None else cache_dir() / "collect"
    return root / f"{key}.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    torch.save({"version": VERSION, **state}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is none (or it is from another version)."""
    if not path.is_file():
        return None
    state = torch.load(path, weights_only=True)
    return state if state.get("version") == VERSION else None

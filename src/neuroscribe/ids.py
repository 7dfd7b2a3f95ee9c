"""Stable content hashes used as ids and cache keys."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any


def stable_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the canonical form that ids are hashed from."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(*parts: Any, length: int = 16) -> str:
    """Hex digest (sha256, truncated) of the canonical JSON of ``parts``."""
    digest = hashlib.sha256(stable_json(list(parts)).encode("utf-8")).hexdigest()
    return digest[:length]


def file_hash(path: str, length: int = 16, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, truncated."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()[:length]


def new_run_id(config_hash: str) -> str:
    """A fresh run id: the UTC start time, then a hash of the config and the clock."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{content_hash(config_hash, time.time_ns())[:8]}"

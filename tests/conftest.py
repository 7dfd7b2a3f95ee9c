"""Shared fixtures. Tests never touch the network or the user's warehouse."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def warehouse_path(tmp_path):
    """A fresh, not yet created warehouse file in a temporary folder."""
    return tmp_path / "wh" / "test.duckdb"

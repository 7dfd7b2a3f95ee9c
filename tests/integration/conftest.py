"""Fixtures of the integration tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from collect_fixtures import build_tiny_model, random_documents, write_txt

TINY_RUN: dict[str, dict[str, Any]] = {
    "collect": {
        "site": "layers.1.mlp",
        "window_tokens": 8,
        "n_explain": 3,
        "n_validate": 2,
        "n_calibrate": 2,
        "n_score_top": 2,
        "n_random": 2,
    },
    "explain": {"explainers": ["baseline/ngram"]},
    "simulate": {"simulators": ["baseline/lexical"]},
}
"""The run config the tiny-model runs share: small windows and splits, baseline annotators."""


def toml_text(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """``[section]`` tables of plain keys; strings, numbers, booleans and lists of them are
    written as JSON writes them, which TOML reads alike."""
    lines = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def tiny_gpt2_config(tmp_path: Path) -> Callable[..., Path]:
    """``write(name, model_seed=0, documents=120, corpus_seed=0, **sections)``: a tiny
    random-weight GPT-2 (``tmp_path / "model"``), a corpus of random documents
    (``tmp_path / "corpus.txt"``) and a run config on them written to ``tmp_path / name``:
    ``TINY_RUN``, each of its sections updated by the one of that name in ``sections`` (new
    sections added). Returns the config's path."""

    def write(
        name: str,
        *,
        model_seed: int = 0,
        documents: int = 120,
        corpus_seed: int = 0,
        **sections: dict[str, Any],
    ) -> Path:
        model = build_tiny_model("gpt2", tmp_path / "model", seed=model_seed)
        corpus = write_txt(tmp_path / "corpus.txt", random_documents(documents, seed=corpus_seed))
        base = {"subject": {"model": str(model)}, "corpus": {"source": str(corpus)}, **TINY_RUN}
        config = {
            section: {**base.get(section, {}), **sections.get(section, {})}
            for section in {**base, **sections}
        }
        path = tmp_path / name
        path.write_text(toml_text(config))
        return path

    return write

"""Golden rows: a fixed run must store the same ``scored_explanations`` and ``agreements``.

A tiny random-weight GPT-2, a seeded corpus, a scripted explainer and simulator (``fake/...``,
answering deterministically from the request) plus the baselines, through the ``neuroscribe run``
command in-process (a real Prefect run, a real DuckDB file). The rows, ids and text compared
exactly and numbers to a tolerance (CI runs on whatever CPU the machine has), must equal
``tests/golden/run_rows.csv``: any redesign of the code between the CLI and the warehouse has to
leave what a run stores unchanged.

Regenerate the file only when a change of behaviour is intended:
``NEUROSCRIBE_WRITE_GOLDEN=1 pytest tests/integration/test_golden_run.py``.
"""

from __future__ import annotations

import csv
import math
import os
import re
import shutil
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from collect_fixtures import build_tiny_model, random_documents, write_txt  # noqa: E402

pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "run_rows.csv"
EXPLAINER = "fake/golden-explainer"
SIMULATOR = "fake/golden-simulator"
DIGITS = [str(d) for d in range(10)]

CONFIG = """
[subject]
model = "{model}"
[corpus]
source = "{corpus}"
max_documents = 200
[collect]
site = "layers.1.mlp"
units = 4
window_tokens = 8
max_windows = 120
batch_size = 8
n_explain = 3
n_validate = 2
n_calibrate = 2
n_score_top = 2
n_random = 2
seed = 3
[explain]
explainers = ["{explainer}", "baseline/ngram"]
samples = 2
[simulate]
simulators = ["{simulator}", "baseline/lexical"]
[score]
bootstrap = 20
fuzz_windows = 2
"""

SCORE_COLUMNS = (
    "unit_key", "site", "unit_index", "explanation_id", "explainer", "explanation", "selected",
    "simulator", "score_kind", "score", "score_undefined_reason", "ci_low", "ci_high",
    "n_tokens", "n_windows", "prompt_sha",
)
AGREEMENT_COLUMNS = ("unit_key", "kind", "annotators", "value", "reason", "n")
NUMERIC = {"score", "ci_low", "ci_high", "value"}


def _explain(request) -> list[str]:
    """Name the first marked token; a second sample names the unit's whole context."""
    user = request.messages[-1].content
    marked = re.findall(r"<<(.+?)>>", user) or ["nothing"]
    word = marked[0].strip()
    return [f'the word "{word}"', f'text near "{word}"'][: request.n]


def _fuzz(request) -> str:
    """Yes when a marked token is named by the description (the first line of the prompt)."""
    user = request.messages[-1].content
    head = user.split("\n", 1)[0].lower()
    marked = re.findall(r"<<(.+?)>>", user)
    return '{"answer": "yes"}' if any(m.strip().lower() in head for m in marked) else (
        '{"answer": "no"}'
    )


def _distributions(prompt: str, positions, candidates) -> list[dict[str, float]]:
    """A deterministic distribution per position over the candidates (digits for simulation,
    yes/no for fuzzing), from the characters before it."""
    out = []
    for p in positions:
        level = (sum(map(ord, prompt[max(0, p - 6) : p])) % 7) / 6
        weights = {
            c: math.exp(-(((int(c) / 9) if c.strip().isdigit() else i / len(candidates)) - level)
                        ** 2 * 8)
            for i, c in enumerate(candidates)
        }
        total = sum(weights.values())
        out.append({c: w / total for c, w in weights.items()})
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with closing(duckdb.connect(str(path), read_only=True)) as con:
        scores = con.execute(
            f"SELECT {', '.join(SCORE_COLUMNS)} FROM scored_explanations"
        ).fetchall()
        agreements = con.execute(
            f"SELECT {', '.join(AGREEMENT_COLUMNS)} FROM agreements"
        ).fetchall()
    rows = [
        {"table": "scored_explanations", **_encode(dict(zip(SCORE_COLUMNS, r, strict=True)))}
        for r in scores
    ] + [
        {"table": "agreements", **_encode(dict(zip(AGREEMENT_COLUMNS, r, strict=True)))}
        for r in agreements
    ]
    return sorted(rows, key=lambda r: sorted(r.items()))


def _encode(row: dict) -> dict[str, str]:
    out = {}
    for k, v in row.items():
        if v is None:
            out[k] = "NULL"
        elif isinstance(v, float):
            out[k] = repr(v)
        elif isinstance(v, list | tuple):
            out[k] = "|".join(map(str, v))
        else:
            out[k] = str(v)
    return out


def _key(row: dict[str, str]) -> tuple[str, ...]:
    return tuple(f"{k}={v}" for k, v in sorted(row.items()) if k not in NUMERIC)


def _close(a: str, b: str) -> bool:
    if a == b:
        return True
    if "NULL" in (a, b):
        return False
    x, y = float(a), float(b)
    return math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-4) or (math.isnan(x) and math.isnan(y))


def test_fixed_run_stores_the_golden_rows(monkeypatch):
    from neuroscribe.llm.fake import register_fake, unregister_fake

    # A fixed folder: a file corpus's id holds its resolved path, and window ids (whose order
    # decides the bootstrap's resamples) hold the corpus id.
    tmp_path = Path(tempfile.gettempdir()) / "neuroscribe-golden-run"
    shutil.rmtree(tmp_path, ignore_errors=True)
    tmp_path.mkdir(parents=True)

    model = build_tiny_model("gpt2", tmp_path / "model", seed=7)
    corpus = write_txt(tmp_path / "corpus.txt", random_documents(150, seed=11))
    config = tmp_path / "golden.toml"
    # Relative paths: the subject's name (hence every unit key and id) must not hold tmp_path.
    monkeypatch.chdir(tmp_path)
    config.write_text(
        CONFIG.format(
            model=model.relative_to(tmp_path),
            corpus=corpus.relative_to(tmp_path),
            explainer=EXPLAINER,
            simulator=SIMULATOR,
        )
    )
    warehouse = tmp_path / "golden.duckdb"
    register_fake(EXPLAINER, _explain)
    register_fake(SIMULATOR, _fuzz, distributions=_distributions)
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    from neuroscribe.cli import app

    try:
        with prefect_test_harness(server_startup_timeout=120):
            result = CliRunner().invoke(
                app, ["--warehouse", str(warehouse), "--config", str(config), "run"]
            )
    finally:
        unregister_fake(EXPLAINER)
        unregister_fake(SIMULATOR)
    assert result.exit_code == 0, result.output
    rows = _rows(warehouse)
    assert {r["table"] for r in rows} == {"scored_explanations", "agreements"}

    if os.environ.get("NEUROSCRIBE_WRITE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        columns = sorted({k for r in rows for k in r})
        with GOLDEN.open("w", newline="") as f:
            writer = csv.DictWriter(f, columns, restval="", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    with GOLDEN.open(newline="") as f:
        expected = list(csv.DictReader(f))
    got = {_key(r): r for r in rows}
    want = {_key(_trim(r)): _trim(r) for r in expected}
    assert sorted(got) == sorted(want), "rows differ (ids, text or kinds)"
    named = ("unit_key", "explainer", "simulator", "score_kind", "kind")
    for key, row in want.items():
        where = {k: v for k, v in (item.split("=", 1) for item in key) if k in named}
        for col in NUMERIC & row.keys():
            assert _close(got[key][col], row[col]), (where, col, got[key][col], row[col])


def _has(row: dict[str, str], key: str) -> bool:
    """A column belongs to a row of its own table only (the CSV holds both tables)."""
    columns = SCORE_COLUMNS if row["table"] == "scored_explanations" else AGREEMENT_COLUMNS
    return key in columns or key == "table"


def _trim(row: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in row.items() if _has(row, k)}

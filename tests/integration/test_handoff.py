"""Workers hand collections to the single warehouse writer as Parquet.

Two worker processes (the installed ``neuroscribe collect --handoff``) collect disjoint units of a
tiny model into one folder at the same time, while a third process runs the ordinary
single-process ``neuroscribe collect`` of all the units; ``neuroscribe ingest`` then loads the
workers' handoffs. The warehouses must hold the same rows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from collect_fixtures import build_tiny_model, random_documents, write_txt
from typer.testing import CliRunner

from neuroscribe.cli import app

CONFIG = """
[subject]
model = "{model}"
[corpus]
source = "{corpus}"
[collect]
site = "layers.1.mlp"
units = {units}
window_tokens = 8
max_windows = 60
batch_size = 7
n_explain = 3
n_validate = 2
n_calibrate = 2
n_score_top = 2
n_random = 2
"""
TABLES = ("subjects", "windows", "units", "unit_windows")
UNIT_COLUMNS = (
    "unit_key",
    "subject_id",
    "site",
    "unit_index",
    "sae_id",
    "corpus_id",
    "n_tokens",
    "max_activation",
    "mean_activation",
    "firing_rate",
    "quantiles",
    "dead",
)
"""Columns of ``units`` without ``run_id``, in table order."""


def command(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "neuroscribe"), *args]


def ingest(warehouse: Path, folder: Path):
    """`neuroscribe ingest`, in this process (the writer; the workers are other processes)."""
    return CliRunner().invoke(app, ["--warehouse", str(warehouse), "ingest", str(folder)])


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """Two workers and one single-process collection, run at the same time; then one ingest."""
    root = tmp_path_factory.mktemp("handoff")
    model = build_tiny_model("gpt2", root / "model")
    corpus = write_txt(root / "corpus.txt", random_documents(40))
    configs = {}
    for name, units in (("a", "[0, 2]"), ("b", "[1, 3, 5]"), ("all", "[0, 1, 2, 3, 5]")):
        configs[name] = root / f"{name}.toml"
        configs[name].write_text(CONFIG.format(model=model, corpus=corpus, units=units))
    handoffs = root / "handoffs"
    procs = [
        subprocess.Popen(
            command("--config", str(configs[w]), "collect", "--handoff", str(handoffs)),
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for w in ("a", "b")
    ]
    procs.append(
        subprocess.Popen(
            command(
                "--warehouse",
                str(root / "single.duckdb"),
                "--config",
                str(configs["all"]),
                "collect",
            ),
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
    )
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr[-3000:]
    loaded = ingest(root / "ingested.duckdb", handoffs)
    assert loaded.exit_code == 0, loaded.stderr[-3000:]
    return root, handoffs, loaded


def snapshot(path: Path) -> dict[str, list[tuple]]:
    """Every row of the collection tables, without the run ids (each process has its own)."""
    with duckdb.connect(str(path), read_only=True) as con:
        return {
            t: sorted(
                con.execute(
                    f"SELECT * EXCLUDE (run_id) FROM {t}"
                    if t.startswith("unit")
                    else f"SELECT * FROM {t}"
                ).fetchall()
            )
            for t in TABLES
        }


def test_ingested_workers_equal_one_process(collected):
    root, handoffs, loaded = collected
    names = sorted(p.name for p in handoffs.iterdir())
    assert len(names) == 2 and all(n.endswith(".handoff") for n in names)
    assert "2 ingested, 0 already there, 0 incomplete skipped" in loaded.stdout
    ingested, single = snapshot(root / "ingested.duckdb"), snapshot(root / "single.duckdb")
    assert [r[2:4] for r in ingested["units"]] == [("layers.1.mlp", i) for i in (0, 1, 2, 3, 5)]
    assert len(ingested["unit_windows"]) > 5 * 10
    for table in TABLES:
        if table != "units":
            assert ingested[table] == single[table], table
    # Units: identical but for the mean activation, which is equal to float32 rounding: the
    # running sums reduce a batch of all units in another order than a batch of some of them.
    mean = UNIT_COLUMNS.index("mean_activation")
    for a, b in zip(ingested["units"], single["units"], strict=True):
        assert a[:mean] + a[mean + 1 :] == b[:mean] + b[mean + 1 :]
        assert a[mean] == pytest.approx(b[mean], rel=1e-6, abs=1e-9)
    with duckdb.connect(str(root / "ingested.duckdb"), read_only=True) as con:
        runs = con.execute("SELECT run_id, status, stage FROM runs ORDER BY run_id").fetchall()
        assert [(s, st) for _, s, st in runs] == [("finished", "collect")] * 2
        # Each unit names the worker run that collected it; each handoff is recorded once.
        assert con.execute(
            "SELECT count(DISTINCT run_id), bool_and(run_id IN (SELECT run_id FROM runs))"
            " FROM units"
        ).fetchall() == [(2, True)]
        logged = con.execute("SELECT name, run_id FROM handoffs ORDER BY name").fetchall()
        assert [n for n, _ in logged] == names
        assert sorted(r for _, r in logged) == [r for r, _, _ in runs]
        assert con.execute("SELECT count(*) FROM split_overlaps").fetchall()[0][0] == 0


def test_ingesting_again_changes_nothing(collected):
    root, handoffs, _ = collected
    wh = root / "ingested.duckdb"
    before = snapshot(wh)
    again = ingest(wh, handoffs)
    assert again.exit_code == 0, again.stderr
    assert "0 ingested, 2 already there" in again.stdout
    assert snapshot(wh) == before
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM handoffs").fetchall()[0][0] == 2
        assert con.execute("SELECT count(*) FROM runs").fetchall()[0][0] == 2


def test_partial_handoff_is_skipped_and_damaged_one_refused(collected):
    root, handoffs, _ = collected
    first = sorted(handoffs.iterdir())[0]
    folder = root / "mixed"
    folder.mkdir()
    # A worker still writing (or killed): its temporary folder lacks the manifest.
    partial = folder / f".{first.name}.tmp-12345"
    shutil.copytree(first, partial)
    (partial / "manifest.json").unlink()
    wh = root / "partial.duckdb"
    r = ingest(wh, folder)
    assert r.exit_code == 0, r.stderr
    assert "0 ingested, 0 already there, 1 incomplete skipped" in r.stdout
    assert f"skipped {partial.name}: not complete" in r.stderr
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM units").fetchall()[0][0] == 0

    # A complete-looking handoff whose file was cut short in transfer: refused, nothing written.
    damaged = folder / first.name
    shutil.copytree(first, damaged)
    data = (damaged / "unit_windows.parquet").read_bytes()
    (damaged / "unit_windows.parquet").write_bytes(data[: len(data) // 2])
    r = ingest(wh, folder)
    assert r.exit_code == 2
    assert "unit_windows.parquet is missing or does not match its checksum" in r.stderr
    assert "Traceback" not in r.stderr
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM units").fetchall()[0][0] == 0
        assert con.execute("SELECT count(*) FROM handoffs").fetchall()[0][0] == 0

    missing = ingest(wh, root / "nowhere")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr

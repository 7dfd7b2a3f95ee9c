"""The Dask engine stores what the local engine stores.

A tiny random-weight GPT-2 and the baseline annotators, through the ``neuroscribe run`` command
in-process (a real Prefect run, a real DuckDB file), then ``score`` (which fans out stored
explanations) on a copy of the local run's warehouse without its simulations and scores: once
with the local engine, once with ``[engine] kind = "dask"`` on a local cluster of 2 worker
processes and chunks of 3 units (so every worker gets several chunks, the last one is short, and
shuffled controls cross chunk boundaries). The Dask run collects on the workers too, one shard
of the units each (``flows.shards``). Every row of the collection (``windows``,
``unit_windows``, ``units``) and of ``scored_explanations``, ``explanations``, ``simulations``,
``scores`` and ``agreements`` must be the same, but for the run that wrote it (and
``units.mean_activation``, equal to float32 rounding); and each command passes through the same
stages (``runs.stage``) on both engines.
"""

from __future__ import annotations

import importlib.util
import shutil
from contextlib import closing
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("prefect_dask") is None, reason="needs prefect-dask"
    ),
]

CONFIG = {
    "corpus": {"max_documents": 120},
    "collect": {"units": 10, "max_windows": 100, "batch_size": 8, "seed": 5},
    "score": {"bootstrap": 20, "fuzz_windows": 2},
}
"""The tiny-model run (``tiny_gpt2_config``) with these sections updated."""

ENGINE = """
[engine]
kind = "dask"
workers = 2
chunk_units = 3
"""

COLLECTED = ("windows", "unit_windows")
TABLES = ("scored_explanations", "explanations", "simulations", "scores", "agreements")
PROVENANCE = ("run_id", "created_at")
"""Columns that name the run that wrote a row, or when (names ending so)."""


def _rows(path: Path, table: str) -> list[tuple]:
    with closing(duckdb.connect(str(path), read_only=True)) as con:
        columns = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        kept = [c for c in columns if not c.endswith(PROVENANCE)]
        return sorted(con.execute(f"SELECT {', '.join(kept)} FROM {table}").fetchall(), key=repr)


def _units(path: Path) -> list[tuple]:
    """Each unit's row, ``mean_activation`` last."""
    with closing(duckdb.connect(str(path), read_only=True)) as con:
        return con.execute(
            "SELECT unit_key, n_tokens, max_activation, firing_rate, quantiles, dead,"
            " mean_activation FROM units ORDER BY unit_key"
        ).fetchall()


def _where(tmp_path: Path, name: str, config: Path) -> list[str]:
    return ["--warehouse", str(tmp_path / f"{name}.duckdb"), "--config", str(config)]


def _unscored_copy(tmp_path: Path, name: str) -> str:
    """A copy of the local run's warehouse without its simulations and scores."""
    shutil.copyfile(tmp_path / "local.duckdb", tmp_path / f"{name}.duckdb")
    with closing(duckdb.connect(str(tmp_path / f"{name}.duckdb"))) as con:
        con.execute("DELETE FROM scores; DELETE FROM simulations; DELETE FROM agreements")
    return name


def test_two_dask_workers_store_the_rows_of_the_local_engine(
    tmp_path, monkeypatch, tiny_gpt2_config
):
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    local = tiny_gpt2_config("local.toml", model_seed=2, documents=60, corpus_seed=4, **CONFIG)
    dask = tmp_path / "dask.toml"
    dask.write_text(local.read_text() + ENGINE)
    from prefect.testing.utilities import prefect_test_harness

    from neuroscribe.cli import app
    from neuroscribe.warehouse import runs

    stages: dict[tuple[str, str], list[str]] = {}
    set_stage = runs.set_stage

    def recorded(name: str, command: str):
        def record(con, run_id: str, stage: str) -> None:
            stages.setdefault((name, command), []).append(stage)
            set_stage(con, run_id, stage)

        return record

    from flows import shards

    cut: list[list[int]] = []
    shard_configs = shards.shard_configs

    def recorded_shards(cfg, workers):
        out = shard_configs(cfg, workers)
        cut.extend(s.collect.units for s in out)
        return out

    monkeypatch.setattr(shards, "shard_configs", recorded_shards)
    from flows import cluster

    started: list[int] = []
    local_cluster = cluster._local_cluster

    def counted(engine):
        started.append(engine.workers)
        return local_cluster(engine)

    monkeypatch.setattr(cluster, "_local_cluster", counted)
    with prefect_test_harness(server_startup_timeout=120):
        for name, config in (("local", local), ("dask", dask)):
            monkeypatch.setattr(runs, "set_stage", recorded(name, "run"))
            result = CliRunner().invoke(app, [*_where(tmp_path, name, config), "run"])
            assert result.exit_code == 0, result.output
        # `score` fans out stored explanations: those of the local run, whose simulations and
        # scores are gone
        for name, config in (("local", local), ("dask", dask)):
            again = _unscored_copy(tmp_path, f"{name}-score")
            monkeypatch.setattr(runs, "set_stage", recorded(name, "score"))
            result = CliRunner().invoke(app, [*_where(tmp_path, again, config), "score"])
            assert result.exit_code == 0, result.output
    assert stages["local", "run"] == ["collect", "explain", "simulate", "score", "agree"]
    assert stages["local", "score"] == ["simulate", "score"]
    for command in ("run", "score"):
        assert stages["dask", command] == stages["local", command]
    assert cut == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]  # the Dask run collected on both workers
    assert started == [2, 2]  # one local cluster for all of `run`, one for `score`
    for table in COLLECTED + TABLES:
        want = _rows(tmp_path / "local.duckdb", table)
        got = _rows(tmp_path / "dask.duckdb", table)
        assert want, f"the local run stored no {table}"
        assert got == want, table
    want_units, got_units = (_units(tmp_path / f"{n}.duckdb") for n in ("local", "dask"))
    assert [u[:-1] for u in got_units] == [u[:-1] for u in want_units]
    assert [u[-1] for u in got_units] == pytest.approx([u[-1] for u in want_units], abs=1e-6)
    with closing(duckdb.connect(str(tmp_path / "dask.duckdb"), read_only=True)) as con:
        assert con.execute("SELECT count(DISTINCT run_id) FROM units").fetchone() == (1,)
    for table in TABLES[:-1]:  # `score` agrees nothing
        want = _rows(tmp_path / "local-score.duckdb", table)
        assert want and _rows(tmp_path / "dask-score.duckdb", table) == want, table
    scored = _rows(tmp_path / "dask.duckdb", "scored_explanations")
    assert len({r[0] for r in scored}) > 6  # more units than two chunks hold: chunks were merged


def test_a_dask_address_without_the_dask_engine_is_refused(tmp_path):
    from neuroscribe.config import ConfigError, load_config

    with pytest.raises(ConfigError, match='engine.address needs engine.kind = "dask"'):
        load_config(None, {"engine.address": "tcp://127.0.0.1:8786"})


def test_an_unreachable_scheduler_is_one_message(tmp_path):
    import socket

    from neuroscribe.checks import check_engine
    from neuroscribe.config import load_config
    from neuroscribe.errors import BadInput

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = load_config(None, {"engine.kind": "dask", "engine.address": f"tcp://127.0.0.1:{port}"})
    with pytest.raises(BadInput, match="cannot reach the Dask scheduler"):
        check_engine(cfg.engine)
    bad = load_config(None, {"engine.kind": "dask", "engine.address": "udp://somewhere"})
    with pytest.raises(BadInput, match="is not a scheduler address"):
        check_engine(bad.engine)


def test_where_the_work_runs_is_not_part_of_the_config_hash():
    from neuroscribe.config import RunConfig, load_config

    dask = load_config(None, {"engine.kind": "dask", "engine.workers": 7})
    assert dask.config_hash == RunConfig().config_hash

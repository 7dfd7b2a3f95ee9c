"""``neuroscribe audit`` on a tiny random-weight GPT-2: the planted copy keeps the function, the
pipeline runs on it, and the n-gram baseline recovers the planted words; bad input is one message
and writes nothing."""

from __future__ import annotations

from contextlib import closing

import duckdb
import pytest
from collect_fixtures import write_sae
from typer.testing import CliRunner

from neuroscribe.audit import AuditSpec, copy_config, plan_audit, planted_copy
from neuroscribe.cli import app
from neuroscribe.config import RunConfig
from neuroscribe.registry import SCORE_KINDS

pytestmark = pytest.mark.slow

TRIGGERS = "rain,engines,bridges"
CONFIG = {
    "corpus": {"max_documents": 200},
    "collect": {"max_windows": 150, "batch_size": 16},
    "score": {"bootstrap": 10, "fuzz": False},
}
"""The tiny-model run (``tiny_gpt2_config``) with these sections updated."""


@pytest.fixture
def setup(tmp_path, monkeypatch, tiny_gpt2_config):
    monkeypatch.setenv("NEUROSCRIBE_CACHE", str(tmp_path / "cache"))
    config = tiny_gpt2_config(
        "audit.toml", model_seed=3, documents=150, corpus_seed=5, **CONFIG
    )
    return config, tmp_path / "wh" / "audit.duckdb"


def _cfg(config) -> RunConfig:
    from neuroscribe.config import load_config

    return load_config(config)


def test_planted_copy_keeps_the_function_and_is_reused(setup):
    config, _ = setup
    cfg = _cfg(config)
    plan = plan_audit(cfg, AuditSpec(triggers=tuple(TRIGGERS.split(",")), unplanted=2))
    assert [p.name for p in plan.plants] == TRIGGERS.split(",")
    copy = planted_copy(cfg, plan)
    assert len(copy.units) == 3 and len(copy.unplanted) == 2
    assert not {u.unit for u in copy.units} & set(copy.unplanted)
    assert [u.relocated_to for u in copy.units] == [64, 65, 66]
    assert copy.function_change <= 1e-4
    assert all(u.auroc > 0.99 for u in copy.units)
    assert planted_copy(cfg, plan) == copy  # the saved copy is found again, not remade
    copied = copy_config(cfg, copy)
    assert copied.subject.model == copy.folder
    assert copied.unit_indices == sorted([u.unit for u in copy.units] + list(copy.unplanted))


def _invoke(config, warehouse, *args):
    return CliRunner().invoke(
        app, ["--warehouse", str(warehouse), "--config", str(config), "audit", *args]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--site", "layers.1.resid"], "has no MLP neurons"),
        (["--site", "layers.1.mlp_out"], "has no MLP neurons"),
        (["--site", "layers.0.mlp,layers.1.mlp"], "an audit plants in one MLP site"),
        (["--sae", "{sae}", "--site", "layers.1.resid"], "cannot audit an SAE"),
        (["--plants", "1000"], "1000 plants do not fit layers.1.mlp, which has 64 units"),
        (["--plants", "65"], "65 plants do not fit layers.1.mlp, which has 64 units"),
        (["--triggers", " , "], "the trigger list is empty"),
        (["--triggers", "zebra"], "not found as whole-word tokens"),
        (["--concept", "weather="], "the trigger list is empty"),
        (["--site", "layers.7.mlp"], "out of range"),
    ],
)
def test_bad_input_is_one_message_and_writes_nothing(setup, args, message):
    config, warehouse = setup
    sae = write_sae(config.parent / "sae")
    result = _invoke(config, warehouse, *(a.format(sae=sae) for a in args))
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not warehouse.exists()
    assert not (config.parent / "cache" / "audits").exists()


def test_audit_plants_runs_the_pipeline_and_stores_recovery(setup, monkeypatch):
    config, warehouse = setup
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        result = _invoke(config, warehouse, "--triggers", TRIGGERS, "--unplanted", "2")
    assert result.exit_code == 0, result.output
    print(result.output)
    with closing(duckdb.connect(str(warehouse), read_only=True)) as con:
        audit = con.execute(
            "SELECT run_id, n_planted, n_unplanted, function_change FROM audits"
        ).fetchall()
        assert len(audit) == 1 and audit[0][1:3] == (3, 2) and audit[0][3] <= 1e-4
        run_status = con.execute(
            "SELECT status FROM runs WHERE run_id = ?", [audit[0][0]]
        ).fetchone()
        assert run_status == ("finished",)
        planted = con.execute(
            "SELECT trigger, recovered, why FROM audit_units"
            " WHERE planted AND explainer = 'baseline/ngram' ORDER BY trigger"
        ).fetchall()
        assert [p[0] for p in planted] == sorted(TRIGGERS.split(","))
        assert all(p[1] for p in planted), planted
        recovery = con.execute(
            "SELECT n_planted, n_recovered, wilson_low, median_planted FROM audit_recovery"
            " WHERE explainer = 'baseline/ngram' AND score_kind = 'corr_top_random'"
        ).fetchall()
        assert recovery[0][:2] == (3, 3)
        assert recovery[0][2] == pytest.approx(0.4385, abs=1e-3)  # Wilson 95% low for 3/3
        assert recovery[0][3] > 0.9
        # the shuffled control names another unit's trigger: not a recovery
        shuffled = con.execute(
            "SELECT count(*) FILTER (WHERE recovered) FROM audit_units"
            " WHERE planted AND explainer = 'control/shuffled'"
        ).fetchone()
        assert shuffled == (0,)
        # metric sanity: one row per score kind, on the 3 planted units
        sanity = con.execute(
            "SELECT score_kind, n_units, n_passed, passes FROM metric_sanity"
            " WHERE simulator = 'baseline/lexical' ORDER BY rowid"
        ).fetchall()
        assert [s[0] for s in sanity] == list(SCORE_KINDS)
        assert all(s[1] == 3 for s in sanity)
        verdict = {s[0]: s[3] for s in sanity}
        assert verdict["corr_top_random"] and verdict["auprc_tokens"], sanity
        assert not verdict["corr_ood"]  # no second corpus: NULL, never a pass
    assert "recovery (audit_recovery)" in result.output
    assert "names 'rain'" in result.output  # the planted units' table (audit_unit_scores)
    assert "metric sanity" in result.output

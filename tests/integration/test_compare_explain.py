"""``neuroscribe compare`` explaining the top of its diff through the pipeline: a tiny model
against its planted copy, with the offline baseline annotators. The planted units (new) get
explanations naming their triggers; partnered units at r = 1 get the same explanation as their
partner, so none is 'changed'; a second comparison reuses every explanation."""

from __future__ import annotations

from contextlib import closing

import pytest
from compare_fixtures import LAYER, PLANTED, TRIGGER_WORDS, build_known_answers
from typer.testing import CliRunner

from neuroscribe.cli import app
from neuroscribe.warehouse import open_readonly
from neuroscribe.warehouse.rows import fetch_dicts

CONFIG = """
[corpus]
source = "{corpus}"
max_documents = 200
[collect]
site = "layers.{layer}.mlp"
window_tokens = 8
max_windows = 120
batch_size = 16
n_explain = 3
n_validate = 2
n_calibrate = 2
n_score_top = 2
n_random = 2
[explain]
explainers = ["baseline/ngram"]
[simulate]
simulators = ["baseline/lexical"]
[score]
bootstrap = 10
fuzz = false
[compare]
models = ["{a}", "{b}"]
explain = {explain}
"""
EXPLAIN = len(PLANTED) + 1
"""The planted units, then one partnered unit (r = 1) with its partner."""


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    return build_known_answers("gpt2", tmp_path_factory.mktemp("gpt2"))


def _compare(known, tmp_path, warehouse, explain=EXPLAIN):
    config = tmp_path / "compare.toml"
    config.write_text(CONFIG.format(corpus=known.corpus, a=known.original, b=known.planted,
                                    explain=explain, layer=LAYER))
    result = CliRunner().invoke(
        app, ["--config", str(config), "--warehouse", str(warehouse), "compare"]
    )
    print(result.output)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def prefect():
    """One Prefect server for the two comparisons of a test (a process starts one of its own
    only once)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_the_top_of_the_diff_is_explained_and_reused(known, tmp_path, monkeypatch, prefect):
    monkeypatch.setenv("NEUROSCRIBE_CACHE", str(tmp_path / "cache"))
    warehouse = tmp_path / "wh.duckdb"
    _compare(known, tmp_path, warehouse)
    with closing(open_readonly(warehouse)) as con:
        runs = fetch_dicts(con, "SELECT run_id, status FROM runs ORDER BY started_at")
        diff = fetch_dicts(con, "SELECT * FROM model_diff")
        units = fetch_dicts(con, "SELECT s.name, u.site, u.unit_index FROM units u"
                                 " JOIN subjects s USING (subject_id)")
    assert all(r["status"] == "finished" for r in runs)
    explained = {(u["name"], u["site"], u["unit_index"]) for u in units}
    # the comparison, then one pipeline run per subject (and site) with units to explain
    assert len(runs) == 3, runs
    planted = {(str(known.planted), f"layers.{LAYER}.mlp", u) for u in PLANTED}
    assert planted <= explained
    assert len(explained) == len(PLANTED) + 2  # and one partnered unit of each subject
    print([(d["change"], d["unit_index"], d["explanation"], d["explanation_score"]) for d in diff])
    # exactly the planted units are new, each explained; the baseline names its trigger
    assert {(d["change"], d["unit_index"]) for d in diff} == {("new", u) for u in PLANTED}
    for d in diff:
        words = TRIGGER_WORDS[PLANTED.index(d["unit_index"])]
        assert d["explanation"] and any(w in d["explanation"] for w in words), d
    # a second comparison finds every top unit explained: no pipeline run, the same diff
    _compare(known, tmp_path, warehouse)
    with closing(open_readonly(warehouse)) as con:
        assert len(fetch_dicts(con, "SELECT run_id FROM runs")) == 4  # the comparison only
        again = fetch_dicts(con, "SELECT change, unit_index, explanation FROM model_diff"
                                 " WHERE run_id = (SELECT max(run_id) FROM runs)")
    assert sorted(map(str, again)) == sorted(
        map(str, ({"change": d["change"], "unit_index": d["unit_index"],
                   "explanation": d["explanation"]} for d in diff))
    )

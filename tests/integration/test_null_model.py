"""``neuroscribe run --random-model`` on a tiny GPT-2: the seeded re-initialised copy is saved,
run through the whole pipeline on the same units and corpus, and linked to the trained run; the
views compare the two; a repeated run reuses the copy, the collection and every LLM call."""

from __future__ import annotations

import re
from contextlib import closing

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from neuroscribe.cli import app
from neuroscribe.llm.cache import clear_response_cache
from neuroscribe.llm.fake import register_fake, unregister_fake

pytestmark = pytest.mark.slow

EXPLAINER = "fake/null-explainer"
UNITS = [3, 10, 17, 24, 31, 38]
CONFIG = {
    "corpus": {"max_documents": 200},
    "collect": {"units": UNITS, "max_windows": 120, "batch_size": 16, "seed": 4},
    "explain": {"explainers": [EXPLAINER, "baseline/ngram"], "samples": 1},
    "score": {"bootstrap": 10, "fuzz": False},
}
"""The tiny-model run (``tiny_gpt2_config``) with these sections updated."""


def _explain(request) -> list[str]:
    """Name the first marked token of the prompt."""
    marked = re.findall(r"<<(.+?)>>", request.messages[-1].content) or ["nothing"]
    return [f'the word "{marked[0].strip()}"'] * request.n


@pytest.fixture
def setup(tmp_path, monkeypatch, tiny_gpt2_config):
    monkeypatch.setenv("NEUROSCRIBE_CACHE", str(tmp_path / "cache"))
    config = tiny_gpt2_config(
        "null.toml", model_seed=3, documents=150, corpus_seed=5, **CONFIG
    )
    spec = register_fake(EXPLAINER, _explain, cache=True)
    yield config, tmp_path / "wh" / "null.duckdb", spec
    unregister_fake(EXPLAINER)


def _run(config, warehouse, *args):
    return CliRunner().invoke(
        app, ["--warehouse", str(warehouse), "--config", str(config), "run", *args]
    )


def _one(con, sql, params=()):
    return con.execute(sql, list(params)).fetchall()


def _hand_percentiles(con, trained_run: str) -> dict[tuple[str, str, str, str], float | None]:
    """Each trained score's percentile among the random model's defined scores of the same
    explainer, simulator and kind, from the raw tables and in Python."""
    scores = _one(
        con,
        "SELECT ne.side, e.unit_key, e.explainer, s.simulator, s.kind, s.value"
        " FROM null_model_explanations ne JOIN explanations e USING (explanation_id)"
        " JOIN scores s USING (explanation_id)"
        " WHERE ne.trained_run_id = ? AND e.selected AND e.status = 'ok'",
        [trained_run],
    )
    out: dict[tuple[str, str, str, str], float | None] = {}
    for side, key, explainer, sim, kind, value in scores:
        if side != "trained":
            continue
        pool = [
            v
            for s, _, x, m, k, v in scores
            if s == "random" and (x, m, k) == (explainer, sim, kind) and v is not None
        ]
        if value is None or not pool:
            out[(key, explainer, sim, kind)] = None
        else:
            below = sum(v < value for v in pool) + 0.5 * sum(v == value for v in pool)
            out[(key, explainer, sim, kind)] = 100 * below / len(pool)
    return out


def test_random_model_null_is_run_linked_compared_and_reused(setup):
    config, warehouse, spec = setup
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        first = _run(config, warehouse, "--random-model")
        assert first.exit_code == 0, first.output
        calls_first = len(spec.requests)
        with closing(duckdb.connect(str(warehouse), read_only=True)) as con:
            before = {
                t: _one(con, f"SELECT count(*) FROM {t}")[0][0]  # noqa: S608
                for t in ("units", "windows", "unit_windows")
            }
        clear_response_cache()  # the repeated run must find its answers in the warehouse
        second = _run(config, warehouse, "--random-model")
        assert second.exit_code == 0, second.output
    print(first.output)
    assert "random-model null" in first.output

    with closing(duckdb.connect(str(warehouse), read_only=True)) as con:
        links = _one(
            con,
            "SELECT n.trained_run_id, n.null_run_id, n.null_model, n.seed, n.method,"
            " n.subject_weights_hash, n.null_weights_hash, t.status, r.status"
            " FROM null_models n JOIN runs t ON t.run_id = n.trained_run_id"
            " JOIN runs r ON r.run_id = n.null_run_id ORDER BY n.created_at",
        )
        assert len(links) == 2  # one link per trained run
        (trained, null, folder, seed, method, w_trained, w_null, *status), again = links
        assert status == ["finished", "finished"] and (seed, method) == (4, "reinitialised")
        assert w_trained != w_null
        assert again[2] == folder  # the saved copy was found again, not remade
        runs = _one(con, "SELECT count(*) FROM runs WHERE status = 'finished'")[0][0]
        assert runs == 4

        # The same unit indices of the copy, collected on the same corpus.
        sides = _one(
            con,
            "SELECT s.name, list(u.unit_index ORDER BY u.unit_index), list(DISTINCT u.corpus_id)"
            " FROM units u JOIN subjects s USING (subject_id) GROUP BY s.name ORDER BY s.name",
        )
        assert {name: (idx, corpus) for name, idx, corpus in sides}[folder][0] == UNITS
        assert len(sides) == 2 and sides[0][1:] == sides[1][1:]

        # null_comparison: a row per explainer x simulator x kind scored on the trained units.
        scored = set(
            _one(
                con,
                "SELECT DISTINCT e.explainer, s.simulator, s.kind FROM null_model_explanations ne"
                " JOIN explanations e USING (explanation_id) JOIN scores s USING (explanation_id)"
                " WHERE ne.trained_run_id = ? AND ne.side = 'trained' AND e.selected",
                [trained],
            )
        )
        compared = _one(
            con,
            "SELECT explainer, simulator, score_kind, n_trained, n_random FROM null_comparison"
            " WHERE trained_run_id = ?",
            [trained],
        )
        assert {tuple(c[:3]) for c in compared} == scored and len(compared) == len(scored)
        assert {c[2] for c in compared} >= {"corr_top_random", "auprc_tokens"}
        assert {(c[3], c[4]) for c in compared} == {(len(UNITS), len(UNITS))}

        # Each percentile as worked out by hand from the stored scores.
        view = {
            (k, x, m, s): p
            for k, x, m, s, p in _one(
                con,
                "SELECT unit_key, explainer, simulator, score_kind, percentile"
                " FROM null_percentiles WHERE trained_run_id = ?",
                [trained],
            )
        }
        hand = _hand_percentiles(con, trained)
        assert view.keys() == hand.keys()
        for key, value in hand.items():
            assert view[key] == (None if value is None else pytest.approx(value)), key
        assert sum(v is not None for v in hand.values()) > len(hand) / 2

        # The random model's 95th percentile and means, by hand (numpy's linear quantile).
        row = _one(
            con,
            "SELECT random_p95, random_mean, trained_mean FROM null_comparison"
            " WHERE trained_run_id = ? AND explainer = 'baseline/ngram'"
            " AND score_kind = 'corr_top_random'",
            [trained],
        )[0]
        values = [
            v
            for (v,) in _one(
                con,
                "SELECT s.value FROM null_model_explanations ne JOIN explanations e"
                " USING (explanation_id) JOIN scores s USING (explanation_id)"
                " WHERE ne.trained_run_id = ? AND ne.side = 'random' AND e.selected"
                " AND e.explainer = 'baseline/ngram' AND s.kind = 'corr_top_random'"
                " AND s.value IS NOT NULL",
                [trained],
            )
        ]
        assert row[0] == pytest.approx(float(np.percentile(values, 95)))
        assert row[1] == pytest.approx(float(np.mean(values)))

        # The repeated run: no new collection (no row added), no new LLM call.
        after = {
            t: _one(con, f"SELECT count(*) FROM {t}")[0][0]  # noqa: S608
            for t in ("units", "windows", "unit_windows")
        }
        assert after == before
        made = _one(
            con,
            "SELECT count(*), count(*) FILTER (WHERE NOT cache_hit) FROM llm_calls"
            " WHERE run_id IN (?, ?)",
            [again[0], again[1]],
        )[0]
        assert made[0] > 0 and made[1] == 0
    assert len(spec.requests) == calls_first > 0


def test_random_model_with_an_sae_is_one_message_and_writes_nothing(setup, tmp_path):
    config, warehouse, _ = setup
    result = _run(config, warehouse, "--random-model", "--sae", str(tmp_path / "sae"))
    assert result.exit_code == 2, result.output
    assert "cannot be used with an SAE" in " ".join(result.output.split())
    assert not warehouse.exists()
    assert not (tmp_path / "cache" / "null_models").exists()

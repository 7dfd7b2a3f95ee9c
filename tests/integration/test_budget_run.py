"""``neuroscribe run`` with a budget on a tiny GPT-2: the cheap baselines explain, simulate and
score every unit, the units below the threshold are escalated, and only they reach the scripted
LLM annotators (``fake/...``); every decision is in ``unit_budget``, every LLM call names its
unit, ``unit_spend`` adds them up, and a repeated run makes no LLM call and stores the same
rows (the score flow with the budget too)."""

from __future__ import annotations

import re
from contextlib import closing

import duckdb
import pytest
from collect_fixtures import build_tiny_model, random_documents, write_txt
from typer.testing import CliRunner

from neuroscribe.cli import app
from neuroscribe.llm.cache import clear_response_cache
from neuroscribe.llm.fake import register_fake, unregister_fake
from neuroscribe.registry import HEADLINE_SCORE
from neuroscribe.score.controls import SHUFFLED_CONTROL

pytestmark = pytest.mark.slow

EXPLAINER = "fake/budget-explainer"
SIMULATOR = "fake/budget-simulator"
BELOW = 0.5
CONFIG = """
[subject]
model = "{model}"
[corpus]
source = "{corpus}"
max_documents = 200
[collect]
site = "layers.1.mlp"
units = 8
window_tokens = 8
max_windows = 120
batch_size = 16
n_explain = 3
n_validate = 2
n_calibrate = 2
n_score_top = 2
n_random = 2
seed = 4
[explain]
explainers = ["{explainer}", "baseline/ngram"]
samples = 2
[simulate]
simulators = ["{simulator}", "baseline/lexical"]
[score]
bootstrap = 10
fuzz_windows = 2
[budget]
escalate = ["fake/*"]
below = {below}
"""


def _explain(request) -> list[str]:
    marked = re.findall(r"<<(.+?)>>", request.messages[-1].content) or ["nothing"]
    word = marked[0].strip()
    return [f'the word "{word}"', f'text near "{word}"'][: request.n]


def _distributions(prompt: str, positions, candidates) -> list[dict[str, float]]:
    """Deterministic, from the characters before each position."""
    out = []
    for p in positions:
        level = sum(map(ord, prompt[max(0, p - 5) : p])) % len(candidates)
        out.append({c: (0.7 if i == level else 0.3 / (len(candidates) - 1))
                    for i, c in enumerate(candidates)})
    return out


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSCRIBE_CACHE", str(tmp_path / "cache"))
    model = build_tiny_model("gpt2", tmp_path / "model", seed=3)
    corpus = write_txt(tmp_path / "corpus.txt", random_documents(150, seed=5))
    config = tmp_path / "budget.toml"
    config.write_text(
        CONFIG.format(
            model=model, corpus=corpus, explainer=EXPLAINER, simulator=SIMULATOR, below=BELOW
        )
    )
    explainer = register_fake(EXPLAINER, _explain, cache=True)
    simulator = register_fake(SIMULATOR, (), distributions=_distributions, cache=True)
    yield config, tmp_path / "wh" / "budget.duckdb", explainer, simulator
    unregister_fake(EXPLAINER)
    unregister_fake(SIMULATOR)


def _run(config, warehouse, command="run"):
    return CliRunner().invoke(
        app, ["--warehouse", str(warehouse), "--config", str(config), command]
    )


def _all(con, sql, params=()):
    return con.execute(sql, list(params)).fetchall()


def _stored(con) -> dict[str, list[tuple]]:
    """The explanations, simulations and scores stored, whoever wrote them."""
    return {
        "explanations": sorted(_all(con, "SELECT explanation_id, text FROM explanations")),
        "simulations": sorted(
            _all(con, "SELECT simulation_id, predictions::VARCHAR FROM simulations")
        ),
        "scores": sorted(
            _all(con, "SELECT explanation_id, simulator, kind, value::VARCHAR FROM scores")
        ),
    }


def test_only_units_below_the_threshold_reach_the_llm_and_a_rerun_makes_no_call(setup):
    config, warehouse, explainer, simulator = setup
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        first = _run(config, warehouse)
        assert first.exit_code == 0, first.output
        made = (len(explainer.requests), simulator.distribution_calls)
        with closing(duckdb.connect(str(warehouse), read_only=True)) as con:
            before = _stored(con)
        clear_response_cache()  # the repeated run must find its answers in the warehouse
        second = _run(config, warehouse)
        assert second.exit_code == 0, second.output
        # The score flow: the escalated simulator only on the units the decisions escalated,
        # all of them done already, so nothing to do.
        again = _run(config, warehouse, "score")
        assert again.exit_code == 0, again.output
    assert (len(explainer.requests), simulator.distribution_calls) == made  # no call again

    with closing(duckdb.connect(str(warehouse), read_only=True)) as con:
        run1, run2, _ = (r for (r,) in _all(con, "SELECT run_id FROM runs ORDER BY started_at"))
        decisions = {
            key: (escalated, reason, score, x, s, threshold)
            for key, escalated, reason, score, x, s, threshold in _all(
                con,
                "SELECT unit_key, escalated, reason, cheap_score, cheap_explainer,"
                " cheap_simulator, threshold FROM unit_budget WHERE run_id = ?",
                [run1],
            )
        }
        live = {k for (k,) in _all(con, "SELECT unit_key FROM units WHERE NOT dead")}
        assert set(decisions) == live and len(live) >= 4

        # The decision, by hand: the baselines' best headline score against the threshold.
        cheap = dict(
            _all(
                con,
                "SELECT e.unit_key, max(s.value) FROM explanations e JOIN scores s"
                " USING (explanation_id) WHERE e.explainer = 'baseline/ngram' AND e.selected"
                " AND s.simulator = 'baseline/lexical' AND s.kind = ? GROUP BY e.unit_key",
                [HEADLINE_SCORE],
            )
        )
        escalated = set()
        for key, (flag, reason, score, x, s, threshold) in decisions.items():
            best = cheap.get(key)
            assert threshold == BELOW
            if best is None:
                assert (flag, reason, score) == (True, "no cheap score", None)
            else:
                assert score == pytest.approx(best)
                assert (x, s) == ("baseline/ngram", "baseline/lexical")
                assert flag == (best < BELOW)
                assert reason == ("below threshold" if flag else "cheap score enough")
            if flag:
                escalated.add(key)
        assert 0 < len(escalated) < len(live), decisions  # the threshold splits the units

        # The escalated explainer explained the escalated units only; the escalated simulator
        # simulated only their explanations (controls included), and all of them.
        by_llm = {
            k
            for (k,) in _all(
                con, "SELECT DISTINCT unit_key FROM explanations WHERE explainer = ?", [EXPLAINER]
            )
        }
        assert by_llm == escalated
        simulated = {
            k
            for (k,) in _all(
                con,
                "SELECT DISTINCT e.unit_key FROM simulations s JOIN explanations e"
                " USING (explanation_id) WHERE s.simulator = ?",
                [SIMULATOR],
            )
        }
        assert simulated == escalated
        unsimulated = _all(
            con,
            "SELECT e.explanation_id FROM explanations e WHERE e.selected AND e.status = 'ok'"
            " AND e.unit_key IN (SELECT unnest(?)) AND NOT EXISTS (SELECT 1 FROM simulations s"
            " WHERE s.explanation_id = e.explanation_id AND s.simulator = ?)",
            [sorted(escalated), SIMULATOR],
        )
        assert unsimulated == []
        controls = _all(
            con, "SELECT count(DISTINCT unit_key) FROM explanations WHERE explainer = ?",
            [SHUFFLED_CONTROL],
        )[0][0]
        assert controls == len(live)

        # Every LLM call of the run names its unit, an escalated one.
        call_units = _all(
            con, "SELECT unit_key, count(*) FROM llm_calls WHERE run_id = ? GROUP BY ALL", [run1]
        )
        assert {k for k, _ in call_units} == escalated

        # unit_spend: the calls per unit, and none made by the repeated run.
        spend = {
            (run, key): (flag, calls, cached, prompt, windows)
            for run, key, flag, calls, cached, prompt, windows in _all(
                con,
                "SELECT run_id, unit_key, escalated, llm_calls, cached_calls, prompt_tokens,"
                " simulated_windows FROM unit_spend",
            )
        }
        assert {k for r, k in spend if r == run1} == live
        for key in live:
            flag, calls, cached, prompt, windows = spend[(run1, key)]
            assert flag == (key in escalated)
            assert (calls > 0 and prompt > 0) == (key in escalated)
            assert windows > 0  # (cache hits in a first run: a request repeated within it)
            flag2, calls2, cached2, _, _ = spend[(run2, key)]
            assert flag2 == flag and calls2 == 0 and (cached2 > 0) == (key in escalated)
        total = _all(
            con, "SELECT count(*) FROM llm_calls WHERE run_id = ? AND NOT cache_hit", [run1]
        )[0][0]
        assert sum(v[1] for (r, _), v in spend.items() if r == run1) == total

        # The repeated run decided the same and stores the same scored rows.
        same = _all(
            con,
            "SELECT count(*) FROM unit_budget a JOIN unit_budget b USING (unit_key)"
            " WHERE a.run_id = ? AND b.run_id = ? AND a.escalated = b.escalated"
            " AND a.reason = b.reason AND a.cheap_score IS NOT DISTINCT FROM b.cheap_score",
            [run1, run2],
        )[0][0]
        assert same == len(live)
        assert _stored(con) == before  # nothing new: every row of the repeated run existed

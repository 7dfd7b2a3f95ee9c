"""A simulator and a score kind registered from this file alone go through ``neuroscribe score``
end to end: a real Prefect run, a real DuckDB file, rows in ``scored_explanations``. The run
before it has an explainer whose every call fails: stored, a warning first, exit status 3."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from neuroscribe.records import Explanation, Simulation, Split, Window
from neuroscribe.registry import SCORE_KINDS, SIMULATORS
from neuroscribe.score import MetricValue, Prepared, ScoreKind
from neuroscribe.simulate import SimulatorPlugin
from neuroscribe.simulate.base import ok_simulation

pytestmark = pytest.mark.slow

TOY_SIMULATOR = "toy/first-token"
TOY_KIND = "toy_max_prediction"

CONFIG = {
    "collect": {"units": 3, "max_windows": 80},
    "explain": {"explainers": ["baseline/ngram", "fake/broken"]},
    "score": {"bootstrap": 10},
}
"""The tiny-model run (``tiny_gpt2_config``) with these sections updated."""


class FirstToken:
    """Predicts 10 on the first token of every window, 0 elsewhere."""

    name = TOY_SIMULATOR
    max_concurrency = 1

    def simulate(self, explanation: Explanation, windows: Sequence[Window]) -> list[Simulation]:
        return [
            ok_simulation(explanation, self.name, w, None, [10.0] + [0.0] * (len(w.tokens) - 1))
            for w in windows
        ]

    async def asimulate(
        self, explanation: Explanation, windows: Sequence[Window]
    ) -> list[Simulation]:
        return self.simulate(explanation, windows)


def largest_prediction(true, pred) -> MetricValue:
    values = [v for w in pred for v in w]
    return MetricValue(float(np.max(values)), None) if values else MetricValue(None, "none")


def test_score_runs_a_plugin_registered_here(tmp_path, monkeypatch, tiny_gpt2_config):
    from prefect.testing.utilities import prefect_test_harness

    from neuroscribe.cli import app
    from neuroscribe.llm.fake import register_fake, unregister_fake

    config = tiny_gpt2_config("c.toml", corpus_seed=2, **CONFIG)
    warehouse = tmp_path / "w.duckdb"
    base = ["--warehouse", str(warehouse), "--config", str(config)]
    SIMULATORS.register(
        TOY_SIMULATOR,
        SimulatorPlugin(make=lambda name, cfg, ledger, annotator: FirstToken(), no_fuzz="toy"),
    )
    SCORE_KINDS.register(
        TOY_KIND,
        ScoreKind(TOY_KIND, "The largest prediction on the held-out random windows.",
                  (Split.SCORE_RANDOM,), lambda ctx: Prepared(largest_prediction)),
    )
    register_fake("fake/broken", lambda request: RuntimeError("endpoint down"))
    try:
        with prefect_test_harness(server_startup_timeout=120):
            first = CliRunner().invoke(app, [*base, "run"])
            assert first.exit_code == 3, first.output
            warning = "warning: explainer fake/broken produced no usable explanation"
            assert warning in first.output
            assert first.output.index(warning) < first.output.index("sim: baseline/lexical")
            again = CliRunner().invoke(app, [*base, "score", "--simulators", TOY_SIMULATOR])
            assert again.exit_code == 0, again.output
    finally:
        unregister_fake("fake/broken")
        SIMULATORS.unregister(TOY_SIMULATOR)
        SCORE_KINDS.unregister(TOY_KIND)
    with closing(duckdb.connect(str(warehouse), read_only=True)) as con:
        rows = con.execute(
            "SELECT explainer, score_kind, score FROM scored_explanations WHERE simulator = ?",
            [TOY_SIMULATOR],
        ).fetchall()
    toy = [r for r in rows if r[1] == TOY_KIND]
    assert toy and all(score == 10.0 for _, _, score in toy)
    # Every kind, the toy one included, for every explanation the run selected (controls too).
    assert {kind for _, kind, _ in rows} >= {TOY_KIND, "corr_top_random", "fuzz_bacc"}
    assert {explainer for explainer, _, _ in toy} == {"baseline/ngram", "control/shuffled"}

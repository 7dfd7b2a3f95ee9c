"""The ``openai`` backend end to end against a real HTTP server on 127.0.0.1 that speaks the
chat-completions protocol with scripted answers (and injected faults)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import ChatServer, planted_unit  # noqa: E402

from neuroscribe.config import AnnotatorConfig, ExplainConfig, SimulateConfig  # noqa: E402
from neuroscribe.explain import make_explainer, select_best  # noqa: E402
from neuroscribe.llm.base import Ledger  # noqa: E402
from neuroscribe.llm.cache import clear_response_cache  # noqa: E402
from neuroscribe.records import Split  # noqa: E402
from neuroscribe.simulate import make_simulator  # noqa: E402
from neuroscribe.simulate.json_mode import JsonSimulator  # noqa: E402

MODEL = "openai/scripted-model"

DENSE = AnnotatorConfig(simulate_format="dense")
"""The dense answer format, the one this file's server reads (the default is sparse)."""


def sim_answer(body: dict) -> str:
    """The JSON a good simulator would give: 10 on tokens containing "zebra"."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    tokens = json.loads(re.search(r"Tokens \(\d+\): (.*)$", user, re.S).group(1))
    return json.dumps(
        {"activations": [{"token": t, "activation": 10 if "zebra" in t else 0} for t in tokens]}
    )


def scripted(body: dict):
    if "response_format" in body:
        return sim_answer(body)
    return ['Explanation: the word "zebra".', "Animals with stripes.", ""][: body.get("n", 1)]


@pytest.fixture
def server(monkeypatch):
    with ChatServer(scripted) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("NEUROSCRIBE_OPENAI_MAX_RETRIES", "0")
        monkeypatch.delenv("NEUROSCRIBE_OPENAI_BASE_URL", raising=False)
        clear_response_cache()  # each test scripts its own answers to the same requests
        yield srv


def test_explainer_and_json_simulator_end_to_end(server):
    unit, windows = planted_unit()
    ledger = Ledger()
    samples = make_explainer(MODEL, ExplainConfig(samples=3), ledger).explain(unit, windows, 3, 4)
    assert [s.status for s in samples] == ["ok", "ok", "failed"]
    assert samples[0].text == 'the word "zebra"' and samples[2].failure == "empty"
    request = server.requests[0]
    assert (request["model"], request["n"], request["seed"]) == ("scripted-model", 3, 4)
    assert request["messages"][0]["role"] == "system"

    sim = make_simulator(MODEL, SimulateConfig(), ledger, DENSE)
    assert isinstance(sim, JsonSimulator)
    chosen = select_best(samples, unit, windows, sim, score=_pooled_corr)
    assert [s.selected for s in chosen] == [True, False, False]  # a tie goes to sample 0
    assert chosen[0].validation_score > 0.95  # the filler words' faint activations remain

    top = [windows[uw.window_id] for uw in unit.in_splits(Split.SCORE_TOP)]
    sims = sim.simulate(chosen[0], top)
    assert all(
        s.status == "ok" and len(s.predictions) == len(w.tokens)
        for s, w in zip(sims, top, strict=True)
    )
    schema = server.requests[-1]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["activations"]["maxItems"] == len(top[-1].tokens)
    assert {c.purpose for c in ledger.calls} == {"explain", "simulate"}
    assert all(c.status == "ok" and c.prompt_tokens == 11 for c in ledger.calls)


def _pooled_corr(unit, sims):
    import numpy as np

    true = {uw.window_id: uw.activations for uw in unit.windows}
    sims = [s for s in sims if s.status == "ok"]
    a = np.concatenate([true[s.window_id] for s in sims])
    p = np.concatenate([s.predictions for s in sims])
    return None if p.std() == 0 else float(np.corrcoef(a, p)[0, 1])


def test_malformed_json_is_repaired_once_then_a_typed_failure(server):
    unit, windows = planted_unit()
    [explanation] = [e for e in make_explainer(MODEL, ExplainConfig()).explain(unit, windows, 1, 0)]
    window = windows[unit.in_splits(Split.SCORE_TOP)[0].window_id]

    server.responder = lambda body: '{"activations": [{"token": "x", "activation": '
    ledger = Ledger()
    [s] = make_simulator(MODEL, SimulateConfig(), ledger, DENSE).simulate(explanation, [window])
    assert (s.status, s.failure, s.predictions) == ("failed", "unparseable", ())
    assert len(ledger.calls) == 2  # the answer and one repair, no more
    assert server.requests[-1]["messages"][-2]["role"] == "assistant"

    # A bad first answer, then a good one after the repair turn. (The bad answers above are
    # cached by request hash, as every response is: forget them to script new ones.)
    clear_response_cache()
    server.responder = lambda body: (
        sim_answer(body)
        if body["messages"][-1]["content"].startswith("That answer")
        else "[1, 2, 3]"
    )
    [s] = make_simulator(MODEL, SimulateConfig(), None, DENSE).simulate(explanation, [window])
    assert s.status == "ok" and len(s.predictions) == len(window.tokens)


def test_http_errors_become_backend_failures(server):
    unit, windows = planted_unit()
    server.responder = lambda body: (500, {"error": {"message": "model crashed"}})
    ledger = Ledger()
    out = make_explainer(MODEL, ExplainConfig(), ledger).explain(unit, windows, 2, 0)
    assert [e.failure for e in out] == ["backend_error", "backend_error"]
    assert all(e.text is None for e in out)
    assert ledger.calls[0].status == "failed" and "model crashed" in ledger.calls[0].error

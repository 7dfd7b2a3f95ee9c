"""Best-of-n with an endpoint as the selecting simulator: the validation calls of several units go
out together, under the annotator's one concurrency limit, against a real HTTP server on
127.0.0.1; and the explanations chosen are those of selecting one unit at a time."""

from __future__ import annotations

import json
import re
import sys
import threading
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import ChatServer, planted_units  # noqa: E402

from neuroscribe.config import RunConfig  # noqa: E402
from neuroscribe.explain import explain_many, make_explainer, select_best  # noqa: E402
from neuroscribe.explain.units import explain_units  # noqa: E402
from neuroscribe.llm.base import Ledger  # noqa: E402
from neuroscribe.llm.cache import clear_response_cache  # noqa: E402
from neuroscribe.records import Split  # noqa: E402
from neuroscribe.score.score import validation_score  # noqa: E402
from neuroscribe.simulate import make_simulator  # noqa: E402

MODEL = "openai/scripted-model"
CONCURRENCY = 16
UNITS = 4
SAMPLES = 2
GOOD, BAD = 'the word "zebra"', "filler words"


def _user(body: dict) -> str:
    return [m["content"] for m in body["messages"] if m["role"] == "user"][-1]


class Server:
    """Explains with the good and the bad explanation (in an order drawn from the prompt, so
    the good one is sample 0 for some units and sample 1 for others); simulates "zebra" as 10
    on the trigger, anything else as 10 everywhere else. The first ``CONCURRENCY`` simulation
    requests wait for each other (a barrier), so they are answered only if that many are in
    flight at once."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(CONCURRENCY, timeout=30)
        self.lock = threading.Lock()
        self.arrived = 0
        self.in_flight = 0
        self.peak = 0

    def __call__(self, body: dict) -> str | list[str]:
        user = _user(body)
        if "response_format" not in body:
            texts = [GOOD, BAD] if zlib.crc32(user.encode()) % 2 else [BAD, GOOD]
            return texts[: body.get("n", 1)]
        with self.lock:
            self.arrived += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            first = self.arrived <= CONCURRENCY
        try:
            if first:
                self.barrier.wait()
        finally:
            with self.lock:
                self.in_flight -= 1
        zebra = "zebra" in user.split("\n", 1)[0]
        tokens = json.loads(re.search(r"Tokens \(\d+\): (.*)$", user, re.S).group(1))
        acts = [{"token": t, "activation": 10 if ("zebra" in t) == zebra else 0} for t in tokens]
        return json.dumps({"activations": acts})


@pytest.fixture
def server(monkeypatch):
    script = Server()
    with ChatServer(script) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.delenv("NEUROSCRIBE_OPENAI_BASE_URL", raising=False)
        clear_response_cache()
        yield script
    clear_response_cache()


def test_validation_calls_of_several_units_are_in_flight_together(server):
    units, windows = planted_units(UNITS)
    n_validate = len(units[0].in_splits(Split.VALIDATE))
    assert SAMPLES * n_validate < CONCURRENCY  # one unit alone cannot fill the limit
    cfg = RunConfig.model_validate(
        {
            "explain": {"explainers": [MODEL], "samples": SAMPLES, "select_with": MODEL},
            "simulate": {"simulators": [MODEL]},
            "score": {"controls": False},
            "annotators": {MODEL: {"concurrency": CONCURRENCY, "max_retries": 0}},
        }
    )
    chosen = explain_units(units, windows, cfg, Ledger())

    assert not server.barrier.broken and server.peak == CONCURRENCY
    assert server.arrived == UNITS * SAMPLES * n_validate

    # The same samples (the response cache answers the same requests), selected one unit at a
    # time as before: the same explanation chosen, with the same validation scores.
    annotator = cfg.annotators[MODEL]
    explainer = make_explainer(MODEL, cfg.explain, None, annotator)
    seeds = [cfg.collect.seed + i for i in range(UNITS)]
    samples = explain_many(explainer, units, windows, SAMPLES, seeds)
    selector = make_simulator(MODEL, cfg.simulate, None, annotator)
    one_at_a_time = [
        e
        for unit, mine in zip(units, samples, strict=True)
        for e in select_best(mine, unit, windows, selector, validation_score)
    ]

    def key(e):
        return (e.explanation_id, e.text, e.selected, e.validation_score)

    assert [key(e) for e in chosen] == [key(e) for e in one_at_a_time]
    picked = [e for e in chosen if e.selected]
    assert len(picked) == UNITS and all(e.text == GOOD for e in picked)
    assert {e.sample_index for e in picked} == {0, 1}  # the scores decided, not the order

"""A hostile endpoint against the explain and simulate stages: a real HTTP server on 127.0.0.1
that answers about 30% of calls with a 429, a 500, a late answer (past the client's timeout), a
truncated 200 body or a 200 that is not JSON. Every unit must come out of each stage, every failure
as a ledger row and a typed failure, and no exception may escape."""

from __future__ import annotations

import json
import random
import re
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import ChatServer, completion, planted_unit, planted_units  # noqa: E402

from neuroscribe.config import AnnotatorConfig, ExplainConfig, RunConfig  # noqa: E402
from neuroscribe.explain import make_explainer  # noqa: E402
from neuroscribe.explain.units import explain_units, silent_annotators  # noqa: E402
from neuroscribe.llm import retry  # noqa: E402
from neuroscribe.llm.base import Ledger  # noqa: E402
from neuroscribe.llm.cache import clear_response_cache  # noqa: E402
from neuroscribe.simulate.units import SIMULATED_SPLITS, simulate_units  # noqa: E402

MODEL = "openai/scripted-model"
FAULTS = ("429", "500", "timeout", "truncated", "html")
FAULT_RATE = 0.3
TIMEOUT_S = 0.25


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-faults-0000")
    monkeypatch.delenv("NEUROSCRIBE_OPENAI_BASE_URL", raising=False)
    monkeypatch.setattr(retry.RetryPolicy, "base_delay_s", 0.001)  # keep backoff short
    clear_response_cache()


class Hostile:
    """A responder that fails about ``FAULT_RATE`` of requests, the kind drawn at random (seeded,
    so a failing run can be replayed), and otherwise answers like a good annotator."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.faults: Counter[str] = Counter()
        self.answered = 0

    def __call__(self, body: dict):
        with self.lock:
            fault = self.rng.choice(FAULTS) if self.rng.random() < FAULT_RATE else None
            self.faults[fault or "ok"] += 1
        good = self._good(body)
        if fault == "429":
            return 429, {"error": {"message": "Rate limit reached", "type": "requests"}}
        if fault == "500":
            return 500, {"error": {"message": "The server had an error"}}
        if fault == "timeout":
            time.sleep(TIMEOUT_S * 2)  # the client has given up; the answer goes nowhere
            return good
        whole = json.dumps(completion(body, [good] if isinstance(good, str) else good)).encode()
        if fault == "truncated":
            return 200, whole[: len(whole) // 2]
        if fault == "html":
            return 200, b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        with self.lock:
            self.answered += 1
        return good

    @staticmethod
    def _good(body: dict):
        if "response_format" in body:  # the JSON simulator: 10 on tokens holding "zebra"
            user = next(m["content"] for m in body["messages"] if m["role"] == "user")
            tokens = json.loads(re.search(r"Tokens \(\d+\): (.*)$", user, re.S).group(1))
            return json.dumps(
                {
                    "activations": [
                        {"token": t, "activation": 10 if "zebra" in t else 0} for t in tokens
                    ]
                }
            )
        return ['The word "zebra".', "Striped animals such as zebras."][: body.get("n", 1)]


def test_a_hostile_endpoint_loses_no_unit_and_every_failure_is_a_row(monkeypatch, capsys):
    units, windows = planted_units(12)
    cfg = RunConfig.model_validate(
        {
            "explain": {"explainers": [MODEL], "samples": 2},
            "simulate": {"simulators": [MODEL]},
            "score": {"controls": False},
            "annotators": {
                MODEL: {
                    "timeout_s": TIMEOUT_S,
                    "max_retries": 1,
                    "concurrency": 4,
                    "simulate_format": "dense",
                }
            },
        }
    )
    hostile = Hostile()
    with ChatServer(hostile) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        ledger = Ledger()
        explanations = explain_units(units, windows, cfg, ledger)
        explain_calls = ledger.drain()
        simulations = simulate_units(explanations, units, windows, cfg, ledger)
        simulate_calls = ledger.drain()
        requests = len(srv.requests)

    # Every unit is explained (ok or a typed failure), one selected sample when any succeeded.
    assert {e.unit_key for e in explanations} == {u.unit.key for u in units}
    assert all(e.status == "ok" or e.failure == "backend_error" for e in explanations)
    selected = [e for e in explanations if e.status == "ok" and e.selected]
    assert selected, "some explanation should survive 30% faults with retries"

    # Every selected explanation is simulated on every held-out window (ok or a typed failure).
    by_key = {u.unit.key: u for u in units}
    expected = {
        (e.explanation_id, w.window_id)
        for e in selected
        for w in by_key[e.unit_key].in_splits(*SIMULATED_SPLITS)
    }
    assert {(s.explanation_id, s.window_id) for s in simulations} == expected
    assert all(s.status == "ok" or s.failure == "backend_error" for s in simulations)

    # Every request the server saw is a ledger row's first attempt or one of its retries, and
    # every failed row names its kind.
    calls = explain_calls + simulate_calls
    assert requests == sum(1 + c.retries for c in calls)
    failed = [c for c in calls if c.status == "failed"]
    kinds = Counter(c.error.split(":", 1)[0] for c in failed)
    assert set(kinds) <= {"rate_limited", "server_error", "timeout", "protocol"}
    assert sum(c.retries for c in calls) > 0
    n_failed_explain = sum(c.status == "failed" for c in explain_calls)
    assert sum(e.status == "failed" for e in explanations) == 2 * n_failed_explain

    with capsys.disabled():  # the measured outcome, for the record
        print(
            f"\nhostile endpoint: {requests} requests, faults injected {dict(hostile.faults)}; "
            f"{len(calls)} calls ({len(explain_calls)} explain, {len(simulate_calls)} simulate), "
            f"{sum(c.retries for c in calls)} retries, {len(failed)} failed calls by kind "
            f"{dict(kinds)}; explanations ok {sum(e.status == 'ok' for e in explanations)}/"
            f"{len(explanations)}, simulations ok "
            f"{sum(s.status == 'ok' for s in simulations)}/{len(simulations)}"
        )


def test_a_truncated_200_is_retried_and_then_a_protocol_failure(monkeypatch):
    bodies = [b'{"id": "c", "choices": [{"index": 0, "mess', b"not json at all"]

    def respond(body):
        return (200, bodies.pop(0)) if bodies else "Words about zebras."

    unit, windows = planted_unit()
    with ChatServer(respond) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        ledger = Ledger()
        ann = AnnotatorConfig(max_retries=2, simulate_format="dense")
        [ok] = make_explainer(MODEL, ExplainConfig(), ledger, ann).explain(unit, windows, 1, 0)
        assert (ok.status, ledger.calls[-1].retries) == ("ok", 2)
        bodies.extend([b'{"choices": [{"index": 0, "message": {"content": "cut'] * 3)
        [bad] = make_explainer(MODEL, ExplainConfig(max_tokens=9), ledger, ann).explain(
            unit, windows, 1, 0
        )
    assert bad.failure == "backend_error"
    row = ledger.calls[-1]
    assert row.status == "failed" and row.retries == 2
    assert row.error.startswith("protocol: ") and "not JSON" in row.error


def test_an_endpoint_that_refuses_n_gets_one_call_per_sample(monkeypatch):
    """llama-server with two slots: 400 "Field 'n' must be between 1 and 2" for n = 3."""

    def respond(body):
        if body.get("n", 1) > 2:
            return 400, {
                "error": {
                    "code": 400,
                    "type": "invalid_request_error",
                    "message": "Field 'n' must be between 1 and 2",
                }
            }
        return f"Words about zebras ({body['seed']})."

    units, windows = planted_units(5)
    cfg = RunConfig.model_validate(
        {
            "explain": {"explainers": [MODEL], "samples": 3},
            "simulate": {"simulators": ["baseline/lexical"]},
            "score": {"controls": False},
            "annotators": {MODEL: {"concurrency": 4, "simulate_format": "dense"}},
        }
    )
    with ChatServer(respond) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        ledger = Ledger()
        explanations = explain_units(units, windows, cfg, ledger)
    assert [r.get("n", 1) for r in srv.requests].count(3) == 1  # remembered after one refusal
    assert len(srv.requests) == 1 + 3 * len(units)
    assert len(explanations) == 3 * len(units)
    assert all(e.status == "ok" for e in explanations)
    assert sum(e.selected for e in explanations) == len(units)
    assert silent_annotators(explanations, [MODEL]) == []
    [refused] = [c for c in ledger.calls if c.status == "failed"]
    assert refused.error.startswith("client_error:") and refused.retries == 0

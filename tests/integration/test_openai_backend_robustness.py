"""The ``openai`` backend's own policy against a real HTTP server on 127.0.0.1: retries with
backoff on 429/5xx only, per-annotator concurrency, preflight errors, prices, and the API key
never reaching the warehouse."""

from __future__ import annotations

import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import ChatServer, planted_unit  # noqa: E402

from neuroscribe.config import AnnotatorConfig, ExplainConfig, SimulateConfig  # noqa: E402
from neuroscribe.explain import explain_many, make_explainer  # noqa: E402
from neuroscribe.llm import retry  # noqa: E402
from neuroscribe.llm.base import Ledger  # noqa: E402
from neuroscribe.llm.cache import clear_response_cache  # noqa: E402
from neuroscribe.llm.factory import check_backend  # noqa: E402
from neuroscribe.llm.openai_backend import PreflightError  # noqa: E402
from neuroscribe.llm.summary import format_summary, run_summary  # noqa: E402
from neuroscribe.records import Split  # noqa: E402
from neuroscribe.simulate import make_simulator, simulate_many  # noqa: E402

MODEL = "openai/scripted-model"
SECRET = "sk-test-SECRET-4f9c2a7e"


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.delenv("NEUROSCRIBE_OPENAI_BASE_URL", raising=False)
    monkeypatch.setattr(retry.RetryPolicy, "base_delay_s", 0.001)  # keep backoff short
    clear_response_cache()


def flaky(failures: list[tuple[int, dict]]):
    """Answer with the given faults first, then a good explanation."""

    def respond(body):
        return failures.pop(0) if failures else "Words about zebras."

    return respond


def test_retries_429_and_5xx_then_succeeds_and_counts_retries(monkeypatch):
    faults = [(429, {"error": {"message": "slow down"}}), (503, {"error": {"message": "busy"}})]
    with ChatServer(flaky(faults), api_key=SECRET) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        ledger = Ledger()
        unit, windows = planted_unit()
        [e] = make_explainer(MODEL, ExplainConfig(), ledger).explain(unit, windows, 1, 0)
    assert e.status == "ok" and len(srv.requests) == 3
    [call] = ledger.calls
    assert (call.status, call.retries) == ("ok", 2)
    [row] = run_summary(ledger.calls, [e])
    assert (row.calls, row.ok, row.retries, row.outputs_ok) == (1, 1, 2, 1)


def test_no_retry_on_a_4xx_that_will_not_change(monkeypatch):
    with ChatServer(lambda b: (400, {"error": {"message": "bad request"}})) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        ledger = Ledger()
        unit, windows = planted_unit()
        [e] = make_explainer(MODEL, ExplainConfig(), ledger).explain(unit, windows, 1, 0)
    assert e.failure == "backend_error" and len(srv.requests) == 1
    assert ledger.calls[0].error.startswith("client_error:")


def test_retries_run_out_and_failures_are_counted_by_kind(monkeypatch):
    with ChatServer(lambda b: (500, {"error": {"message": "crash"}})) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        ledger = Ledger()
        units = [planted_unit(seed=s) for s in range(3)]
        ann = AnnotatorConfig(max_retries=2, concurrency=3, simulate_format="dense")
        explainer = make_explainer(MODEL, ExplainConfig(), ledger, ann)
        out = explain_many(
            explainer,
            [u for u, _ in units],
            {k: w for _, ws in units for k, w in ws.items()},
            1,
            [0, 1, 2],
        )
    assert [e[0].failure for e in out] == ["backend_error"] * 3  # no unit stops the others
    assert len(srv.requests) == 9
    [row] = run_summary(ledger.calls, [e for es in out for e in es])
    assert (row.failed, row.retries, row.call_failures) == (3, 6, {"server_error": 3})
    assert row.output_failures == {"backend_error": 3}
    assert "call:server_error=3" in format_summary([row])


def test_timeouts_are_retried_then_typed(monkeypatch):
    def slow(body):
        time.sleep(0.5)
        return "late"

    with ChatServer(slow) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        ledger = Ledger()
        unit, windows = planted_unit()
        ann = AnnotatorConfig(timeout_s=0.1, max_retries=1, simulate_format="dense")
        [e] = make_explainer(MODEL, ExplainConfig(), ledger, ann).explain(unit, windows, 1, 0)
    assert e.failure == "backend_error"
    assert ledger.calls[0].error.startswith("timeout:") and ledger.calls[0].retries == 1


def test_concurrency_is_capped_per_annotator(monkeypatch):
    lock, now, peak = threading.Lock(), [0], [0]

    def respond(body):
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.05)
        with lock:
            now[0] -= 1
        return '{"activations": []}'

    with ChatServer(respond) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        unit, windows = planted_unit()
        from neuroscribe.records import Explanation

        e = Explanation(explanation_id="e", unit_key=unit.unit.key, explainer="x", text="zebras")
        held_out = [windows[w.window_id] for w in unit.windows]
        sim = make_simulator(
            MODEL, SimulateConfig(), None, AnnotatorConfig(concurrency=3, simulate_format="dense")
        )
        out = simulate_many(sim, [(e, held_out[:6]), (e, held_out[6:])])
    assert [len(x) for x in out] == [6, len(held_out) - 6]
    assert peak[0] == 3


def test_preflight_names_the_problem(monkeypatch):
    with ChatServer(lambda b: "OK", api_key=SECRET, models=["scripted-model"]) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        check_backend(MODEL)  # fine
        with pytest.raises(PreflightError, match="does not know the model 'nope'") as e:
            check_backend("openai/nope")
        assert e.value.reason == "unknown_model"
        monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
        with pytest.raises(ValueError, match="rejected the API key") as e:
            check_backend(MODEL)
        assert e.value.reason == "auth"
        port = srv.httpd.server_address[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")  # now closed
    with pytest.raises(PreflightError, match="cannot reach the endpoint") as e:
        check_backend(MODEL, AnnotatorConfig(timeout_s=2))
    assert e.value.reason == "unreachable"


def test_the_api_key_never_reaches_the_warehouse_and_costs_are_estimated(
    monkeypatch, warehouse_path
):
    from neuroscribe.warehouse import connect
    from neuroscribe.warehouse.calls import save_llm_calls

    with ChatServer(
        lambda b: (
            (401, {"error": {"message": "nope"}}) if "bad" in str(b) else "Words about zebras."
        ),
        api_key=SECRET,
    ) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        ledger = Ledger()
        unit, windows = planted_unit()
        ann = AnnotatorConfig(cost_in_per_1k=1.0, cost_out_per_1k=2.0)
        make_explainer(MODEL, ExplainConfig(), ledger, ann).explain(unit, windows, 2, 0)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET + "-bad")  # a failing call, error stored
        make_explainer(MODEL, ExplainConfig(max_tokens=7), ledger, ann).explain(unit, windows, 1, 0)
    calls = ledger.drain()
    assert calls[0].cost_usd == pytest.approx((11 * 1.0 + 5 * 2.0) / 1000)
    assert calls[1].status == "failed"
    with closing(connect(warehouse_path)) as con:
        save_llm_calls(con, "run-1", calls)
        rows = con.execute("SELECT * FROM llm_calls").fetchall()
    assert len(rows) == 2 and SECRET not in repr(rows)
    con = None
    data = b"".join(p.read_bytes() for p in warehouse_path.parent.iterdir() if p.is_file())
    assert SECRET.encode() not in data
    assert all(SECRET not in repr(c.model_dump()) for c in calls)


def test_held_out_splits_are_simulated_concurrently_in_order(monkeypatch):
    import json
    import re

    def respond(body):
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        tokens = json.loads(re.search(r"Tokens \(\d+\): (.*)$", user, re.S).group(1))
        return json.dumps(
            {"activations": [{"token": t, "activation": 10 if "zebra" in t else 0} for t in tokens]}
        )

    with ChatServer(respond) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        unit, windows = planted_unit()
        from neuroscribe.records import Explanation

        e = Explanation(explanation_id="e", unit_key=unit.unit.key, explainer="x", text="zebras")
        top = [windows[w.window_id] for w in unit.in_splits(Split.SCORE_TOP)]
        sim = make_simulator(
            MODEL, SimulateConfig(), None, AnnotatorConfig(concurrency=8, simulate_format="dense")
        )
        [sims] = simulate_many(sim, [(e, top)])
    assert [s.window_id for s in sims] == [w.window_id for w in top]
    assert all(s.status == "ok" for s in sims)

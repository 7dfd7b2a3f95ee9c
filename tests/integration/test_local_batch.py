"""Batched generation and distributions of the in-process backend, on a tiny random Llama built
by the test: equal to ``model.generate`` and to plain forward passes of one prompt at a time,
independent of the other requests in the batch, one ledger row per request, and concurrent
``achat`` calls answered together."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import make_window, save_tiny_llama  # noqa: E402

from neuroscribe.config import AnnotatorConfig  # noqa: E402
from neuroscribe.llm.base import ChatRequest, Ledger, Message  # noqa: E402
from neuroscribe.llm.cache import clear_response_cache  # noqa: E402
from neuroscribe.llm.factory import make_backend  # noqa: E402
from neuroscribe.llm.local import _eos_ids  # noqa: E402
from neuroscribe.llm.local_batch import GenerationSpec, Runner, common_prefix  # noqa: E402
from neuroscribe.records import Explanation  # noqa: E402
from neuroscribe.simulate.all_at_once import AllAtOnceSimulator  # noqa: E402

torch = pytest.importorskip("torch")

USERS = ["the zebra ran", "a cat sat on the mat, then left for good", "x"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROSCRIBE_CACHE", str(tmp_path_factory.mktemp("cache")))
        path = save_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama")
        yield str(path)


def loaded(tiny):
    from neuroscribe.models import load_model

    return load_model(tiny)


def prompts(tiny, system="You describe patterns in text, in one short sentence."):
    tok = loaded(tiny).tokenizer
    texts = [
        tok.apply_chat_template(
            [{"role": "system", "content": system}, {"role": "user", "content": u}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for u in USERS
    ]
    return [list(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]


def reference_generate(tiny, prompt, spec):
    """``model.generate`` on one prompt alone, as the backend used to call it."""
    lm = loaded(tiny)
    ids = torch.tensor([prompt])
    sample = spec.temperature > 0
    extra = {"temperature": spec.temperature, "top_p": 1.0, "top_k": 0} if sample else {}
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(spec.seed)
        out = lm.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=spec.max_tokens,
            do_sample=sample,
            num_return_sequences=spec.n,
            pad_token_id=lm.tokenizer.pad_token_id,
            **extra,
        )
    eos = _eos_ids(lm.tokenizer, lm.model)
    rows = []
    for row in out[:, len(prompt) :].tolist():
        rows.append(row[: next((i for i, t in enumerate(row) if t in eos), len(row))])
    return rows


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_batched_generation_equals_generate_one_prompt_at_a_time(tiny, temperature):
    ps = prompts(tiny)
    # (``generate`` refuses n > 1 without sampling)
    ns = [3, 1, 2] if temperature > 0 else [1, 1, 1]
    specs = [GenerationSpec(n, 7, temperature, seed) for n, seed in zip(ns, [5, 9, 5], strict=True)]
    lm = loaded(tiny)
    batched, runs = Runner(lm.model).generate(ps, specs, _eos_ids(lm.tokenizer, lm.model))
    assert batched == [reference_generate(tiny, p, s) for p, s in zip(ps, specs, strict=True)]
    assert any(len(row) > 0 for rows in batched for row in rows)
    # The common prefix (template and system message) ran once, counted on the first prompt.
    shared = common_prefix(ps)
    assert shared > 10
    assert runs == [len(ps[0])] + [len(p) - shared for p in ps[1:]]


def test_a_requests_samples_do_not_depend_on_its_batch(tiny):
    ps = prompts(tiny)
    lm = loaded(tiny)
    eos = _eos_ids(lm.tokenizer, lm.model)
    spec = GenerationSpec(2, 6, 1.0, 3)
    alone, _ = Runner(lm.model).generate(ps[1:2], [spec], eos)
    together, _ = Runner(lm.model).generate(ps, [GenerationSpec(1, 6, 1.0, 0), spec, spec], eos)
    assert together[1] == alone[0] and together[2] == alone[0]


def test_batched_distributions_equal_plain_forward_passes(tiny):
    lm = loaded(tiny)
    ps = prompts(tiny)
    rows = [[len(p) - 4, len(p) - 1] for p in ps]
    candidates = [5, 17, 1000]
    runner = Runner(lm.model, max_rows=2)  # two forward passes: rows 0-1, then row 2
    probs, runs = runner.distributions(ps, rows, candidates)
    for p, r, got in zip(ps, rows, probs, strict=True):
        with torch.inference_mode():
            full = torch.softmax(lm.model(input_ids=torch.tensor([p])).logits[0].float(), -1)
        expected = full[r][:, candidates].flatten().tolist()
        assert [x for row in got for x in row] == pytest.approx(expected, rel=1e-4, abs=0)
    shared = common_prefix(ps)  # ran once, counted on the first prompt
    assert runs == [len(ps[0])] + [len(p) - shared for p in ps[1:]]
    # The next call reuses the stored prefix: only the suffixes run.
    _, again = runner.distributions(ps, rows, candidates)
    assert again == [len(p) - shared for p in ps]


def test_simulator_batches_windows_with_one_ledger_row_each(tiny):
    name = f"local/{tiny}"
    clear_response_cache()
    ledger = Ledger()
    one = make_backend(name, ledger, "simulate", annotator=AnnotatorConfig(concurrency=1))
    many = make_backend(name, ledger, "simulate")
    e = Explanation(explanation_id="e", unit_key="u", explainer="x", text="the word zebra")
    windows = [make_window(["a", " zebra", " ran"], doc=f"d{i}") for i in range(2)]
    windows += [make_window(["the", " cat", " sat", " down", " now"], doc="d3")]
    first = AllAtOnceSimulator(name, one).simulate(e, windows)
    # The first two windows have equal tokens: one computed, its repeat a cache hit.
    assert [c.cache_hit for c in ledger.drain()] == [False, True, False]
    clear_response_cache()
    second = AllAtOnceSimulator(name, many).simulate(e, windows)
    calls = ledger.drain()
    assert [c.cache_hit for c in calls] == [False, True, False]
    assert sum(c.prompt_tokens for c in calls if not c.cache_hit) == many.tokens_run
    for a, b in zip(first, second, strict=True):
        assert a.status == b.status == "ok"
        assert b.predictions == pytest.approx(a.predictions, abs=1e-5)
    AllAtOnceSimulator(name, many).simulate(e, windows)  # a re-run makes no call
    assert all(c.cache_hit for c in ledger.drain())


def test_concurrent_achat_calls_are_answered_in_one_batch(tiny, monkeypatch):
    name = f"local/{tiny}"
    clear_response_cache()
    ledger = Ledger()
    backend = make_backend(name, ledger, "explain", "sha")
    batches = []
    real = backend.runner.generate

    def spy(ps, specs, eos):
        batches.append(len(ps))
        return real(ps, specs, eos)

    monkeypatch.setattr(backend.runner, "generate", spy)
    requests = [
        ChatRequest(
            messages=(Message(role="user", content=u),), temperature=1.0, max_tokens=5, n=2, seed=i
        )
        for i, u in enumerate(USERS)
    ]

    async def all_at_once():
        return await asyncio.gather(*(backend.achat(r) for r in requests))

    together = asyncio.run(all_at_once())
    assert batches == [3]
    assert [c.request_hash for c in ledger.drain()] == [
        r.request_hash(backend.cache_identity) for r in requests
    ]
    clear_response_cache()
    alone = [backend.chat(r) for r in requests]
    assert batches == [3, 1, 1, 1]
    assert [r.texts for r in together] == [r.texts for r in alone]


def test_the_explainer_generates_for_many_units_in_one_batch(tiny, monkeypatch):
    from annotator_fixtures import planted_unit

    from neuroscribe.config import ExplainConfig
    from neuroscribe.explain import make_explainer
    from neuroscribe.explain.many import explain_many

    name = f"local/{tiny}"
    clear_response_cache()
    units, windows = [], {}
    for seed in range(3):
        unit, ws = planted_unit(seed=seed)
        units.append(unit)
        windows.update(ws)
    explainer = make_explainer(name, ExplainConfig(max_tokens=6), Ledger())
    batches = []
    real = explainer.backend.runner.generate

    def spy(ps, specs, eos):
        batches.append([s.n for s in specs])
        return real(ps, specs, eos)

    monkeypatch.setattr(explainer.backend.runner, "generate", spy)
    batched = explain_many(explainer, units, windows, 2, [0, 1, 2])
    assert batches == [[2, 2, 2]]  # no probe of n first: the local backend always takes it
    clear_response_cache()
    alone = [explainer.explain(u, windows, 2, seed) for seed, u in enumerate(units)]
    assert batches[1:] == [[2], [2], [2]]
    assert [[e.text for e in es] for es in batched] == [[e.text for e in es] for es in alone]

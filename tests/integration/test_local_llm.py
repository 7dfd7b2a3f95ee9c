"""The in-process backend on a tiny random Llama (fast) and on the embedded SmolLM2 (slow).

The tiny model has MiniLM's WordPiece tokenizer, whose pre-tokenizer drops tabs and newlines:
a harder alignment case than SmolLM2's byte-level BPE, which keeps them as tokens.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import make_window, planted_unit, save_tiny_llama  # noqa: E402

from neuroscribe.config import EMBEDDED_SUBJECT, ExplainConfig, SimulateConfig  # noqa: E402
from neuroscribe.explain import make_explainer  # noqa: E402
from neuroscribe.llm.base import ChatRequest, Ledger, Message  # noqa: E402
from neuroscribe.llm.cache import clear_response_cache  # noqa: E402
from neuroscribe.llm.factory import make_backend  # noqa: E402
from neuroscribe.records import Explanation, Split  # noqa: E402
from neuroscribe.simulate import make_simulator  # noqa: E402
from neuroscribe.simulate.all_at_once import DIGITS, AllAtOnceSimulator  # noqa: E402

torch = pytest.importorskip("torch")

TRICKY = ["def", " zebra", "(", "\t", "x", "\n", "\n    ", "", " zebra", "##s", "\\t", " é", "."]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROSCRIBE_CACHE", str(tmp_path_factory.mktemp("cache")))
        path = save_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama")
        yield f"local/{path}"


def manual_next_token_probs(name: str, prefix: str, candidates) -> list[float]:
    """Independent check: run the model on the prefix alone and read its last position."""
    from neuroscribe.models import load_model

    lm = load_model(name.removeprefix("local/"))
    ids = lm.tokenizer(prefix, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        probs = torch.softmax(lm.model(input_ids=ids).logits[0, -1].float(), dim=-1)
    return [float(probs[lm.tokenizer.convert_tokens_to_ids(c)]) for c in candidates]


def test_next_token_distributions_equal_a_manual_forward_pass(tiny):
    ledger = Ledger()
    backend = make_backend(tiny, ledger, "simulate")
    sim = AllAtOnceSimulator(tiny, backend)
    prompt, positions = sim.prompt_text("the token zebra", TRICKY)
    dists = backend.next_token_distributions(prompt, positions, DIGITS)
    assert len(dists) == len(TRICKY)
    for p, d in list(zip(positions, dists, strict=True))[:4]:
        expected = manual_next_token_probs(tiny, prompt[:p], DIGITS)
        assert [d[c] for c in DIGITS] == pytest.approx(expected, rel=1e-4, abs=1e-7)
    assert ledger.calls[-1].params["positions"] == positions
    with pytest.raises(ValueError, match="not 1"):
        backend.next_token_distributions(prompt, positions[:1], ["zebraxyzzyq"])


def test_all_at_once_simulator_aligns_one_prediction_per_token(tiny):
    sim = make_simulator(tiny, SimulateConfig())
    assert isinstance(sim, AllAtOnceSimulator)
    explanation = Explanation(explanation_id="e", unit_key="u", explainer="x", text="zebras")
    windows = [make_window(TRICKY), make_window([" a"]), make_window([])]
    unit, planted = planted_unit(length=32)
    windows += [planted[uw.window_id] for uw in unit.in_splits(Split.EXPLAIN)]
    sims = sim.simulate(explanation, windows)
    for w, s in zip(windows, sims, strict=True):
        assert s.status == "ok", s.failure
        assert len(s.predictions) == len(w.tokens)
        assert all(0.0 <= p <= 10.0 for p in s.predictions)


def test_chat_is_seeded_batched_cached_and_leaves_global_rng_alone(tiny):
    ledger = Ledger()
    backend = make_backend(tiny, ledger, "explain", "sha")
    request = ChatRequest(
        messages=(Message(role="system", content="s"), Message(role="user", content="zebra")),
        temperature=1.0,
        max_tokens=6,
        n=3,
        seed=7,
        top_logprobs=2,
    )
    torch.manual_seed(123)
    expected_draw = torch.rand(1)
    torch.manual_seed(123)
    first = backend.chat(request)
    assert torch.rand(1) == expected_draw
    assert len(first.texts) == 3 and first.prompt_tokens > 0 and first.completion_tokens > 0
    assert len(first.logprobs) == 3 and len(first.logprobs[0][0].top) == 2
    clear_response_cache()
    assert backend.chat(request).texts == first.texts  # same seed, same samples
    assert backend.chat(request).texts == first.texts
    assert [c.cache_hit for c in ledger.calls] == [False, False, True]
    assert ledger.calls[0].prompt_sha == "sha" and ledger.calls[0].annotator == tiny


def test_local_explainer_returns_n_samples(tiny):
    unit, windows = planted_unit()
    out = make_explainer(tiny, ExplainConfig(max_tokens=8)).explain(unit, windows, n=2, seed=0)
    assert [e.sample_index for e in out] == [0, 1]
    assert all((e.status == "ok") == (e.text is not None) for e in out)


def test_int8_simulator_stays_near_float32_and_is_cached_apart(tiny):
    clear_response_cache()
    explanation = Explanation(explanation_id="e", unit_key="u", explainer="x", text="zebras")
    unit, planted = planted_unit(length=32)
    windows = [planted[uw.window_id] for uw in unit.in_splits(Split.EXPLAIN)]
    runs = {}
    for dtype in ("float32", "int8"):
        ledger = Ledger()
        cfg = SimulateConfig(local_dtype=dtype)
        runs[dtype] = (make_simulator(tiny, cfg, ledger).simulate(explanation, windows), ledger)
    (f32, _), (i8, i8_ledger) = runs["float32"], runs["int8"]
    assert [s.status for s in i8] == ["ok"] * len(windows)
    assert not any(c.cache_hit for c in i8_ledger.calls)  # float32 answers are not reused
    diffs = [abs(a - b) for x, y in zip(f32, i8, strict=True)
             for a, b in zip(x.predictions, y.predictions, strict=True)]
    assert max(diffs) > 0  # the int8 model did run
    assert max(diffs) < 0.5  # on the 0-10 scale


@pytest.mark.slow
def test_smollm2_explains_and_simulates_with_right_shapes():
    """Shapes and ranges only: SmolLM2-135M's quality is near zero (DESIGN.md)."""
    name = f"local/{EMBEDDED_SUBJECT}"
    unit, windows = planted_unit(length=32)
    ledger = Ledger()
    [e] = make_explainer(name, ExplainConfig(), ledger).explain(unit, windows, n=1, seed=0)
    assert e.status in ("ok", "failed")
    if e.status == "ok":
        assert 0 < len(e.text) <= 200
    else:
        assert e.failure in ("empty", "unparseable")
    window = windows[unit.in_splits(Split.SCORE_TOP)[0].window_id]
    explanation = (
        e
        if e.status == "ok"
        else e.model_copy(update={"status": "ok", "text": 'the token "zebra"', "failure": None})
    )
    # float32, so that the check below against a plain forward pass is exact (bf16 differs by
    # rounding); it also checks that reusing the cached prompt prefix changes nothing.
    sim = make_simulator(name, SimulateConfig(local_dtype="float32"), ledger)
    [s] = sim.simulate(explanation, [window])
    assert s.status == "ok" and len(s.predictions) == 32
    assert all(0.0 <= p <= 10.0 for p in s.predictions)
    # The byte-level tokenizer keeps each tab as its own token: check one position exactly.
    prompt, positions = sim.prompt_text(explanation.text, window.tokens)
    got = sim.backend.next_token_distributions(prompt, positions[-1:], DIGITS)[0]
    want = manual_next_token_probs(name, prompt[: positions[-1]], DIGITS)
    assert [got[c] for c in DIGITS] == pytest.approx(want, rel=1e-3, abs=1e-6)

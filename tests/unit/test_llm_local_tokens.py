"""Token counts of the in-process backend's all-at-once calls, on a tiny random Llama built by the
test (no downloaded model): the ledger counts the prompt tokens that ran through the
model, and the prefix reused from the previous prompt's key/value cache is counted apart."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import make_window, save_tiny_llama  # noqa: E402

from neuroscribe.llm.base import Ledger  # noqa: E402
from neuroscribe.llm.cache import clear_response_cache  # noqa: E402
from neuroscribe.llm.factory import make_backend  # noqa: E402
from neuroscribe.models import load_model  # noqa: E402
from neuroscribe.records import Explanation  # noqa: E402
from neuroscribe.simulate.all_at_once import AllAtOnceSimulator  # noqa: E402

pytest.importorskip("torch")


def test_local_distribution_calls_count_the_prompt_tokens_they_run(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROSCRIBE_CACHE", str(tmp_path / "cache"))
    name = f"local/{save_tiny_llama(tmp_path / 'llama')}"
    clear_response_cache()
    ledger = Ledger()
    backend = make_backend(name, ledger, "simulate")
    sim = AllAtOnceSimulator(name, backend)
    e = Explanation(explanation_id="e", unit_key="u", explainer="x", text="the word zebra")
    windows = [
        make_window(["a", " zebra", " ran"], doc="d1"),
        make_window(["the", " cat", " sat", " down"], doc="d2"),
    ]
    assert all(s.status == "ok" for s in sim.simulate(e, windows))

    tok = load_model(name.removeprefix("local/")).tokenizer
    full = [
        len(tok(sim.prompt_text(e.text, w.tokens)[0], add_special_tokens=False)["input_ids"])
        for w in windows
    ]
    first, second = ledger.calls
    assert first.prompt_tokens == full[0]  # nothing to reuse yet
    # The second window shares the instructions and the explanation: only the rest is run.
    assert 32 <= backend.tokens_reused < full[1]
    assert second.prompt_tokens == full[1] - backend.tokens_reused
    assert backend.tokens_run == first.prompt_tokens + second.prompt_tokens

    # A repeated request is a cache hit: nothing runs, and its row repeats the original count.
    sim.simulate(e, windows[:1])
    hit = ledger.calls[-1]
    assert hit.cache_hit and hit.prompt_tokens == full[0]
    assert backend.tokens_run == first.prompt_tokens + second.prompt_tokens

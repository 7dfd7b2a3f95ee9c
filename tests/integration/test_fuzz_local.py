"""Fuzzing with the in-process backend on a tiny random Llama: P(yes) is read from one forward
pass, equals a manual forward pass, and a repeated run makes no new model call."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import planted_unit, save_tiny_llama  # noqa: E402

from neuroscribe.config import ScoreConfig, SimulateConfig  # noqa: E402
from neuroscribe.llm.base import Ledger  # noqa: E402
from neuroscribe.llm.cache import clear_response_cache  # noqa: E402
from neuroscribe.records import Explanation  # noqa: E402
from neuroscribe.score import fuzz_scores  # noqa: E402
from neuroscribe.simulate import make_fuzz_judge  # noqa: E402
from neuroscribe.simulate.fuzz import build_fuzz_items  # noqa: E402
from neuroscribe.simulate.fuzz_llm import LLMFuzzJudge  # noqa: E402

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROSCRIBE_CACHE", str(tmp_path_factory.mktemp("cache")))
        path = save_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama")
        yield f"local/{path}"


def test_local_fuzz_judge_reads_p_yes_from_the_logits(tiny):
    from neuroscribe.models import load_model

    unit, windows = planted_unit(length=12)
    items = build_fuzz_items(unit, 3, seed=0)
    e = Explanation(explanation_id="E", unit_key=unit.unit.key, explainer="x/y", text="zebras")
    clear_response_cache()
    ledger = Ledger()
    judge = make_fuzz_judge(tiny, SimulateConfig(), ledger)
    assert isinstance(judge, LLMFuzzJudge) and judge.unavailable == {}
    verdicts = judge.judge(e, items, windows)
    assert len(verdicts) == len(items) == 6
    assert all(v.status == "ok" and 0.0 <= v.confidence <= 1.0 for v in verdicts)
    assert all(v.answer == (v.confidence > 0.5) for v in verdicts)
    # Independent check of the first item: a plain forward pass over the whole prompt.
    lm = load_model(tiny.removeprefix("local/"))
    text = judge.backend.format_chat(
        judge.messages(e.text, windows[items[0].window_id].tokens, items[0].marked), False
    )
    ids = lm.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        probs = torch.softmax(lm.model(input_ids=ids).logits[0, -1].float(), dim=-1)
    yes, no = (float(probs[lm.tokenizer.convert_tokens_to_ids(w)]) for w in ("yes", "no"))
    assert verdicts[0].confidence == pytest.approx(yes / (yes + no), rel=1e-4)
    calls = ledger.drain()
    assert len(calls) == 6 and not any(c.cache_hit for c in calls)
    scores = fuzz_scores("E", tiny, verdicts, ScoreConfig(bootstrap=20))
    assert {s.kind for s in scores} == {"fuzz_bacc", "fuzz_auroc"}
    assert all(s.n_windows == 3 for s in scores if s.value is not None)
    # The same requests again: every one answered from the cache.
    again = make_fuzz_judge(tiny, SimulateConfig(), ledger).judge(e, items, windows)
    assert again == verdicts
    assert all(c.cache_hit for c in ledger.drain())

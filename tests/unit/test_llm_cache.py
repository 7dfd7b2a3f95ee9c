"""The response cache survives processes through the warehouse: a cache primed from the
``llm_calls`` rows of a first run answers an identical second run with zero backend calls, for
chat (texts and logprobs) and next-token distributions alike."""

from __future__ import annotations

from contextlib import closing

from annotator_fixtures import planted_unit

from neuroscribe.config import ExplainConfig, SimulateConfig
from neuroscribe.explain import make_explainer
from neuroscribe.llm.base import ChatResponse, Ledger, TokenLogprobs
from neuroscribe.llm.cache import (
    CHAT,
    DISTRIBUTIONS,
    clear_response_cache,
)
from neuroscribe.llm.fake import register_fake
from neuroscribe.records import Split
from neuroscribe.simulate import make_simulator
from neuroscribe.simulate.all_at_once import AllAtOnceSimulator
from neuroscribe.warehouse import connect
from neuroscribe.warehouse.calls import PRIME_CACHE_SQL, prime_cache_from_warehouse, save_llm_calls


def digits(prompt, positions, candidates):
    return [{c: (0.3 if c == "7" else 0.7 / 9) + 1e-13 * p for c in candidates} for p in positions]


def one_run(ledger: Ledger):
    unit, windows = planted_unit()
    explanations = make_explainer("fake/cached", ExplainConfig(), ledger).explain(
        unit, windows, 2, 0
    )
    sim = make_simulator("fake/cached", SimulateConfig(), ledger)
    assert isinstance(sim, AllAtOnceSimulator)
    held_out = [windows[w.window_id] for w in unit.in_splits(Split.SCORE_TOP)]
    return explanations, sim.simulate(explanations[0], held_out)


def test_a_primed_cache_answers_a_second_run_with_zero_calls(warehouse_path):
    spec = register_fake(
        "fake/cached", lambda r: ["Stripes.", "Zebras."], distributions=digits, cache=True
    )
    clear_response_cache()
    first = Ledger()
    explanations, sims = one_run(first)
    made = len(spec.requests), spec.distribution_calls
    assert made == (1, 3) and not any(c.cache_hit for c in first.calls)
    with closing(connect(warehouse_path)) as con:
        save_llm_calls(con, "run-1", first.drain())

    clear_response_cache()  # a fresh process: nothing in memory
    with closing(connect(warehouse_path)) as con:
        assert prime_cache_from_warehouse(con) == 4
    second = Ledger()
    explanations2, sims2 = one_run(second)
    assert (len(spec.requests), spec.distribution_calls) == made  # zero backend calls
    assert all(c.cache_hit and c.latency_ms == 0.0 for c in second.calls)
    assert explanations2 == explanations and sims2 == sims  # rebuilt exactly

    with closing(connect(warehouse_path)) as con:
        save_llm_calls(con, "run-2", second.drain())
        n = len(con.execute(PRIME_CACHE_SQL).fetchall())
    assert n == 4  # cache hits are not primed twice


def test_codecs_round_trip_logprobs_and_unrounded_probabilities():
    r = ChatResponse(
        texts=("a", "b"),
        prompt_tokens=3,
        completion_tokens=2,
        logprobs=(
            (TokenLogprobs(token="a", top=(("a", -0.1), ("b", -2.5))),),
            (TokenLogprobs(token="b", top=(("b", -0.2),)),),
        ),
    )
    raw, pt, ct = CHAT.encode(r)
    assert CHAT.decode(raw) == r and (pt, ct) == (3, 2)
    d = [{"0": 0.1 + 1e-17, "1": 1 / 3}]
    assert DISTRIBUTIONS.decode(DISTRIBUTIONS.encode(d)[0]) == d


def test_uncached_fakes_keep_a_private_cache_per_backend():
    spec = register_fake("fake/uncached", ["one", "two"])
    unit, windows = planted_unit()
    ex = make_explainer("fake/uncached", ExplainConfig())
    assert [ex.explain(unit, windows, 1, 0)[0].text for _ in range(2)] == ["one", "one"]
    again = make_explainer("fake/uncached", ExplainConfig()).explain(unit, windows, 1, 0)
    assert again[0].text == "one" and len(spec.requests) == 2  # not the process-wide cache

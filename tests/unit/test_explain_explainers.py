"""Explainers end to end with no model: the n-gram baseline, LLM explainers on a scripted
backend, the factory, and best-of-n selection."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import planted_unit  # noqa: E402

from neuroscribe.config import ExplainConfig  # noqa: E402
from neuroscribe.explain import ExplainFailure, make_explainer, select_best  # noqa: E402
from neuroscribe.explain.ngram import NgramExplainer, rank_terms  # noqa: E402
from neuroscribe.llm.base import Ledger  # noqa: E402
from neuroscribe.llm.fake import register_fake  # noqa: E402
from neuroscribe.records import Explanation, Split, UnitExamples  # noqa: E402
from neuroscribe.simulate.base import ok_simulation  # noqa: E402
from neuroscribe.simulate.lexical import LexicalSimulator  # noqa: E402


def test_ngram_baseline_finds_the_planted_trigger():
    unit, windows = planted_unit()
    assert rank_terms(unit, windows) == ["zebra"]  # filler words never reach half the max
    [e] = make_explainer("baseline/ngram", ExplainConfig()).explain(unit, windows, n=3, seed=0)
    assert (e.status, e.text) == ("ok", 'the token "zebra"')
    assert e.explainer == "baseline/ngram" and e.sample_index == 0 and e.prompt is None
    again = NgramExplainer().explain(unit, windows, n=1, seed=5)[0]
    assert again == e  # deterministic, seed-free


def test_ngram_baseline_reads_only_the_explain_split():
    unit, windows = planted_unit()
    # Put a different trigger everywhere outside the explain split: nothing may change.
    others = {uw.window_id for uw in unit.windows if uw.split != Split.EXPLAIN}
    tampered = {
        wid: w.model_copy(update={"tokens": tuple(" giraffe" for _ in w.tokens)})
        if wid in others
        else w
        for wid, w in windows.items()
    }
    ex = NgramExplainer()
    assert ex.explain(unit, tampered, 1, 0) == ex.explain(unit, windows, 1, 0)


def test_ngram_then_lexical_predicts_the_trigger():
    unit, windows = planted_unit()
    [e] = NgramExplainer().explain(unit, windows, 1, 0)
    top = [uw for uw in unit.in_splits(Split.SCORE_TOP)]
    sims = LexicalSimulator().simulate(e, [windows[uw.window_id] for uw in top])
    for uw, sim in zip(top, sims, strict=True):
        assert [p == 10.0 for p in sim.predictions] == [a > 4 for a in uw.activations]


def test_silent_unit_gives_a_typed_failure():
    unit, windows = planted_unit()
    silent = UnitExamples(
        unit=unit.unit,
        stats=unit.stats,
        windows=tuple(
            uw.model_copy(update={"activations": tuple(0.0 for _ in uw.activations)})
            for uw in unit.windows
        ),
    )
    [e] = NgramExplainer().explain(silent, windows, 1, 0)
    assert (e.status, e.failure, e.text) == ("failed", "no_examples", None)
    register_fake("fake/never-called", [])
    out = make_explainer("fake/never-called", ExplainConfig()).explain(silent, windows, 2, 0)
    assert [x.failure for x in out] == ["no_examples", "no_examples"]


def test_llm_explainer_parses_samples_and_types_failures():
    unit, windows = planted_unit()
    spec = register_fake("fake/explainer", [["Explanation: animals like zebras.", "", "<<zebra>>"]])
    ledger = Ledger()
    cfg = ExplainConfig(samples=3, temperature=0.9)
    out = make_explainer("fake/explainer", cfg, ledger).explain(unit, windows, n=3, seed=1)
    assert [x.status for x in out] == ["ok", "failed", "failed"]
    assert out[0].text == "animals like zebras"
    assert [x.failure for x in out[1:]] == ["empty", "unparseable"]
    assert all(x.text is None for x in out[1:])
    assert [x.sample_index for x in out] == [0, 1, 2]
    assert len({x.explanation_id for x in out}) == 3
    assert out[0].prompt.name == "explain_highlight"
    [req] = spec.requests
    assert (req.n, req.seed, req.temperature, req.max_tokens) == (3, 1, 0.9, cfg.max_tokens)
    assert req.messages[0].role == "system"
    [call] = ledger.calls
    assert call.purpose == "explain" and call.prompt_sha == out[0].prompt.sha
    assert call.annotator == "fake/explainer" and call.status == "ok"


def test_llm_explainer_ids_are_stable_and_depend_on_inputs():
    unit, windows = planted_unit()
    register_fake("fake/stable", lambda req: "Zebra words.")
    ex = make_explainer("fake/stable", ExplainConfig())
    a, b = ex.explain(unit, windows, 1, 0), ex.explain(unit, windows, 1, 0)
    assert a == b
    assert ex.explain(unit, windows, 1, 1)[0].explanation_id != a[0].explanation_id
    table = make_explainer("fake/stable", ExplainConfig(format="table"))
    t = table.explain(unit, windows, 1, 0)[0]
    assert t.prompt.name == "explain_table" and t.explanation_id != a[0].explanation_id


def test_backend_errors_and_missing_samples_are_typed():
    unit, windows = planted_unit()
    register_fake("fake/broken", [RuntimeError("connection refused")])
    ledger = Ledger()
    out = make_explainer("fake/broken", ExplainConfig(), ledger).explain(unit, windows, 2, 0)
    assert [x.failure for x in out] == [ExplainFailure.BACKEND_ERROR] * 2
    assert ledger.calls[0].status == "failed" and "connection refused" in ledger.calls[0].error
    register_fake("fake/short", [["One sample about zebras."]])
    out = make_explainer("fake/short", ExplainConfig()).explain(unit, windows, 2, 0)
    assert [x.status for x in out] == ["ok", "failed"] and out[1].failure == "missing_sample"


def test_unknown_backends_are_named():
    with pytest.raises(ValueError, match="valid: local, openai, fake, baseline"):
        make_explainer("gpt/4", ExplainConfig())
    with pytest.raises(ValueError, match="baseline/ngram"):
        make_explainer("baseline/magic", ExplainConfig())
    with pytest.raises(ValueError, match="backend/model"):
        make_explainer("local", ExplainConfig())
    with pytest.raises(ValueError, match="no fake backend registered"):
        make_explainer("fake/unregistered-xyz", ExplainConfig())


class ScriptedSimulator:
    """Predicts the true activations scaled by a per-explanation factor (negative: inverted)."""

    name = "fake/scripted-sim"

    def __init__(self, unit: UnitExamples, quality: dict[str, float]) -> None:
        self.acts = {uw.window_id: uw.activations for uw in unit.windows}
        self.quality = quality
        self.seen: list[str] = []

    def simulate(self, explanation, windows):
        self.seen.extend(w.window_id for w in windows)
        q = self.quality[explanation.text]
        return [
            ok_simulation(explanation, self.name, w, None, [q * a for a in self.acts[w.window_id]])
            for w in windows
        ]


def pooled_corr(unit, sims):
    import numpy as np

    true = {uw.window_id: uw.activations for uw in unit.windows}
    a = np.concatenate([true[s.window_id] for s in sims])
    p = np.concatenate([s.predictions for s in sims])
    return None if p.std() == 0 else float(np.corrcoef(a, p)[0, 1])


def _samples(texts):
    return [
        Explanation(
            explanation_id=f"e{i}",
            unit_key="u",
            explainer="fake/x",
            sample_index=i,
            text=t,
            status="ok" if t else "failed",
            failure=None if t else "empty",
        )
        for i, t in enumerate(texts)
    ]


def test_select_best_uses_validate_windows_and_marks_exactly_one():
    unit, windows = planted_unit()
    sim = ScriptedSimulator(unit, {"bad": -1.0, "good": 1.0, "flat": 0.0, "good too": 2.0})
    out = select_best(
        _samples(["bad", None, "good", "flat", "good too"]), unit, windows, sim, pooled_corr
    )
    validate = {uw.window_id for uw in unit.in_splits(Split.VALIDATE)}
    assert set(sim.seen) == validate
    assert [x.selected for x in out] == [False, False, True, False, False]  # tie -> lower index
    assert out[0].validation_score == pytest.approx(-1.0)
    assert out[1].validation_score is None and out[3].validation_score is None
    assert out[2].validation_score == pytest.approx(1.0)


def test_select_best_with_no_defined_scores_or_no_ok_samples():
    unit, windows = planted_unit()
    sim = ScriptedSimulator(unit, {"a": 0.0, "b": 0.0})
    out = select_best(_samples([None, "a", "b"]), unit, windows, sim, pooled_corr)
    assert [x.selected for x in out] == [False, True, False]
    out = select_best(_samples([None, None]), unit, windows, sim, pooled_corr)
    assert not any(x.selected for x in out)
    [lone] = select_best(_samples(["a"]), unit, windows, LexicalSimulator(), pooled_corr)
    assert lone.selected


def test_ngram_ranks_by_window_counts_not_rare_tokens():
    """A token that fires in every top window beats one seen once; common words that also
    occur where the unit is silent rank below both."""
    from annotator_fixtures import make_window

    from neuroscribe.records import UnitId, UnitStats, UnitWindow

    rows = [
        ([" a", " zebra", " and", " okapi"], [0, 5, 0, 4]),
        ([" a", " zebra", " ran"], [0, 6, 0]),
        ([" the", " zebra", " and", " the"], [0, 5, 3, 0]),
    ]
    windows, uws = {}, []
    for rank, (toks, acts) in enumerate(rows):
        w = make_window(toks, doc=str(rank))
        windows[w.window_id] = w
        uws.append(
            UnitWindow(
                window_id=w.window_id,
                split=Split.EXPLAIN,
                rank=rank,
                activations=tuple(float(a) for a in acts),
            )
        )
    unit = UnitExamples(
        unit=UnitId(subject_id="s", site="layers.0.mlp", index=0),
        stats=UnitStats(n_tokens=10, max=6, mean=1, firing_rate=0.3, quantiles=(), dead=False),
        windows=tuple(uws),
    )
    # zebra 3/3; okapi 1/3; "and" fires once but also sits silent once -> 1/3 - 1/3 = 0.
    assert rank_terms(unit, windows) == ["zebra", "okapi"]
    [e] = NgramExplainer().explain(unit, windows, 1, 0)
    assert e.text == 'the tokens "zebra" and "okapi"'

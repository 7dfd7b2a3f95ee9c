"""Fuzzing: item construction, the judges (scripted backends, lexical, embedding), the scores
against hand-worked values and sklearn, and the lexical path through the stages into DuckDB."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import TRIGGER, make_window, planted_unit  # noqa: E402
from test_prompts import as_text, check_golden  # noqa: E402

from neuroscribe.config import RunConfig, ScoreConfig, SimulateConfig  # noqa: E402
from neuroscribe.llm.base import (  # noqa: E402
    Capabilities,
    ChatResponse,
    Ledger,
    TokenLogprobs,
)
from neuroscribe.llm.fake import register_fake, unregister_fake  # noqa: E402
from neuroscribe.prompts import load_prompt  # noqa: E402
from neuroscribe.records import Explanation, Simulation, Split  # noqa: E402
from neuroscribe.score import FUZZ_KINDS, fuzz_scores  # noqa: E402
from neuroscribe.simulate import fuzz_units, make_fuzz_judge  # noqa: E402
from neuroscribe.simulate.embedding import EmbeddingFuzzJudge  # noqa: E402
from neuroscribe.simulate.fuzz import (  # noqa: E402
    FuzzItem,
    FuzzVerdict,
    build_fuzz_items,
    marked_text,
    parse_answer,
)
from neuroscribe.warehouse import connect  # noqa: E402
from neuroscribe.warehouse.annotations import save_scores  # noqa: E402
from neuroscribe.warehouse.runs import finish_run, start_run  # noqa: E402

CFG = ScoreConfig(bootstrap=50)


def explanation(text: str, eid: str = "E", unit_key: str = "u") -> Explanation:
    return Explanation(explanation_id=eid, unit_key=unit_key, explainer="x/y", text=text)


# --- items -------------------------------------------------------------------------------------


def test_items_are_held_out_balanced_and_deterministic() -> None:
    unit, windows = planted_unit(n_validate=4, n_random=3, length=16)
    items = build_fuzz_items(unit, max_windows=10, seed=0)
    splits = {w.window_id: w for w in unit.windows}
    fire_at = 0.3 * unit.stats.max
    assert items and all(
        splits[i.window_id].split in (Split.SCORE_TOP, Split.SCORE_RANDOM) for i in items
    )
    explain_ids = {w.window_id for w in unit.in_splits(Split.EXPLAIN, Split.VALIDATE)}
    assert not explain_ids & {i.window_id for i in items}
    correct = [i for i in items if i.correct]
    wrong = [i for i in items if not i.correct]
    assert len(correct) == len(wrong) == 4  # the 4 score_top windows fire; random ones do not
    for c, w in zip(correct, wrong, strict=True):
        acts = splits[c.window_id].activations
        assert c.window_id == w.window_id and len(c.marked) == len(w.marked) >= 1
        assert all(acts[i] >= fire_at for i in c.marked)
        assert all(acts[i] < fire_at for i in w.marked)
        assert windows[c.window_id].tokens[c.marked[0]] == TRIGGER
        assert c.n_tokens == 16
    assert build_fuzz_items(unit, max_windows=10, seed=0) == items  # deterministic
    other = build_fuzz_items(unit, max_windows=10, seed=1)
    assert [i.marked for i in other if i.correct] == [i.marked for i in correct]
    assert [i.marked for i in other if not i.correct] != [i.marked for i in wrong]
    assert build_fuzz_items(unit, max_windows=2, seed=0) == items[:4]


def test_marked_text_wraps_runs_and_keeps_spaces_outside() -> None:
    tokens = [" the", " old", " barn", " was", " red", "dish", "\n", " x"]
    assert marked_text(tokens, [1, 4, 5]) == "the <<old>> barn was <<reddish>> x"
    assert marked_text(["a", "b", "##c"], [2]) == "a b<<c>>"  # WordPiece continuation


def test_parse_answer() -> None:
    assert parse_answer(" Yes.") is True and parse_answer("no, it is not") is False
    assert parse_answer('{"answer": "no"}') is False
    assert parse_answer("maybe") is None and parse_answer("{oops") is None


# --- the prompt --------------------------------------------------------------------------------


def test_fuzz_prompt_matches_expected_and_avoids_corpus_words() -> None:
    prompt = load_prompt("fuzz")
    assert prompt.variables == {"explanation", "text"}
    window = make_window([" the", " quick", " zebra", " jumps", " over", " a", " zebra"])
    register_fake("fake/fuzz-golden", ["yes"])
    try:
        judge = make_fuzz_judge("fake/fuzz-golden", SimulateConfig())
        messages = judge.messages('the word "zebra"', window.tokens, (2, 6))
    finally:
        unregister_fake("fake/fuzz-golden")
    check_golden("fuzz.txt", as_text(messages))
    banned = {"return", "function", "file", "string", "module", "object", "class", "value"}
    words = {w.strip(".,:;\"'()<>").lower() for w in prompt.body.split()}
    assert not words & banned


# --- scores ------------------------------------------------------------------------------------


def item(window: str, correct: bool, n_tokens: int = 8) -> FuzzItem:
    return FuzzItem(
        window_id=window, split=Split.SCORE_TOP, marked=(1,), correct=correct, n_tokens=n_tokens
    )


def verdict(
    it: FuzzItem, answer: bool | None, conf: float | None = None, failed: bool = False
) -> FuzzVerdict:
    return FuzzVerdict(
        explanation_id="E",
        simulator="S",
        item=it,
        answer=answer,
        confidence=conf,
        status="failed" if failed else "ok",
        failure="backend_error" if failed else None,
    )


def by_kind(scores):
    return {s.kind: s for s in scores}


def test_fuzz_scores_by_hand_and_against_sklearn() -> None:
    items = [item("w1", True), item("w1", False), item("w2", True), item("w2", False)]
    answers = [True, True, True, False]
    conf = [0.9, 0.6, 0.4, 0.2]
    scores = by_kind(
        fuzz_scores(
            "E", "S", [verdict(i, a, c) for i, a, c in zip(items, answers, conf, strict=True)], CFG
        )
    )
    assert set(scores) == set(FUZZ_KINDS)
    labels = [i.correct for i in items]
    # TPR 2/2, TNR 1/2 -> 0.75. Positives 0.9, 0.4 vs negatives 0.6, 0.2: 3 of 4 pairs -> 0.75.
    assert scores["fuzz_bacc"].value == pytest.approx(0.75)
    assert scores["fuzz_bacc"].value == pytest.approx(balanced_accuracy_score(labels, answers))
    assert scores["fuzz_auroc"].value == pytest.approx(0.75)
    assert scores["fuzz_auroc"].value == pytest.approx(roc_auc_score(labels, conf))
    for s in scores.values():
        assert (s.n_windows, s.n_tokens, s.reason) == (2, 16, None)
        assert s.ci_low is not None and s.ci_low <= s.value <= s.ci_high


def test_fuzz_scores_against_sklearn_on_many_items() -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    items = [item(f"w{k}", c) for k in range(30) for c in (True, False)]
    conf = rng.uniform(size=len(items)) + 0.3 * np.array([i.correct for i in items])
    answers = conf > 0.6
    verdicts = [verdict(i, bool(a), float(c)) for i, a, c in zip(items, answers, conf, strict=True)]
    scores = by_kind(fuzz_scores("E", "S", verdicts, CFG))
    labels = [i.correct for i in items]
    assert math.isclose(scores["fuzz_bacc"].value, balanced_accuracy_score(labels, answers))
    assert math.isclose(scores["fuzz_auroc"].value, roc_auc_score(labels, conf))


def test_fuzz_scores_undefined_cases() -> None:
    a, b, c, d = item("w1", True), item("w1", False), item("w2", True), item("w2", False)
    # A failed item is left out and named; its window still counts through its other item.
    s = by_kind(
        fuzz_scores(
            "E",
            "S",
            [
                verdict(a, True, 0.8),
                verdict(b, None, failed=True),
                verdict(c, True, 0.7),
                verdict(d, False, 0.1),
            ],
            CFG,
        )
    )
    assert s["fuzz_bacc"].value == pytest.approx(1.0)
    assert s["fuzz_bacc"].reason == "1 of 4 items failed"
    assert s["fuzz_bacc"].n_windows == 2
    # One class left: NULL, never 0.5.
    s = by_kind(fuzz_scores("E", "S", [verdict(a, True, 0.8), verdict(b, None, failed=True)], CFG))
    assert s["fuzz_bacc"].value is None and s["fuzz_bacc"].reason.startswith("only firing")
    # A judge without probabilities: the reason it gives.
    s = by_kind(
        fuzz_scores(
            "E",
            "S",
            [verdict(a, True), verdict(b, False)],
            CFG,
            unavailable={"fuzz_auroc": "no probabilities: S answers yes or no"},
        )
    )
    assert s["fuzz_bacc"].value == 1.0
    assert (s["fuzz_auroc"].value, s["fuzz_auroc"].reason) == (
        None,
        "no probabilities: S answers yes or no",
    )
    assert (s["fuzz_auroc"].n_windows, s["fuzz_auroc"].n_tokens) == (0, 0)
    # Some items without a probability: no AUROC on a biased subset.
    s = by_kind(fuzz_scores("E", "S", [verdict(a, True, 0.9), verdict(b, False)], CFG))
    assert s["fuzz_auroc"].value is None
    assert s["fuzz_auroc"].reason == "1 of 2 items without a probability"
    # No items at all.
    s = by_kind(fuzz_scores("E", "S", [], CFG, no_items="unit never fires"))
    assert all(x.value is None and x.reason == "unit never fires" for x in s.values())
    with pytest.raises(ValueError, match="not"):
        fuzz_scores("E", "other", [verdict(a, True)], CFG)


# --- judges ------------------------------------------------------------------------------------


def zebra_marked(text: str) -> bool:
    return "<<zebra>>" in text.rsplit("Text:", 1)[-1]


def test_distribution_judge_reads_p_yes_and_repeats_are_free() -> None:
    unit, windows = planted_unit(length=12)
    items = build_fuzz_items(unit, 5, seed=0)

    def dists(prompt, positions, candidates):
        assert list(positions) == [len(prompt)] and tuple(candidates) == ("yes", "no")
        return [{"yes": 0.3, "no": 0.1} if zebra_marked(prompt) else {"yes": 0.05, "no": 0.2}]

    spec = register_fake("fake/fuzz-dist", distributions=dists, cache=True)
    try:
        ledger = Ledger()
        judge = make_fuzz_judge("fake/fuzz-dist", SimulateConfig(), ledger)
        assert judge.unavailable == {}
        verdicts = judge.judge(explanation("zebras"), items, windows)
        calls = ledger.drain()
        assert {c.purpose for c in calls} == {"fuzz"} and len(calls) == len(items)
        assert all(c.prompt_sha == load_prompt("fuzz").sha for c in calls)
        assert [v.confidence for v in verdicts] == [
            pytest.approx(0.75 if i.correct else 0.2) for i in items
        ]
        assert [v.answer for v in verdicts] == [i.correct for i in items]
        scores = by_kind(fuzz_scores("E", "fake/fuzz-dist", verdicts, CFG))
        assert scores["fuzz_bacc"].value == 1.0 and scores["fuzz_auroc"].value == 1.0
        made = spec.distribution_calls
        again = make_fuzz_judge("fake/fuzz-dist", SimulateConfig(), ledger)
        assert again.judge(explanation("zebras"), items, windows) == verdicts
        assert spec.distribution_calls == made  # every repeat answered from the cache
        assert all(c.cache_hit for c in ledger.drain())
    finally:
        unregister_fake("fake/fuzz-dist")


def test_logprob_judge_and_answer_only_judge() -> None:
    unit, windows = planted_unit(length=12)
    items = build_fuzz_items(unit, 2, seed=0)

    def with_logprobs(request):
        yes = zebra_marked(request.messages[-1].content)
        top = (
            (("yes", math.log(0.6)), ("no", math.log(0.2)))
            if yes
            else ((" No", math.log(0.7)), ("Yes", math.log(0.1)))
        )
        step = TokenLogprobs(token=top[0][0], top=top)
        return ChatResponse(texts=(top[0][0],), logprobs=((step,),))

    register_fake(
        "fake/fuzz-lp", with_logprobs, capabilities=Capabilities(logprobs=True, json_schema=False)
    )
    register_fake("fake/fuzz-text", lambda r: '{"answer": "yes"}')
    try:
        lp = make_fuzz_judge("fake/fuzz-lp", SimulateConfig())
        verdicts = lp.judge(explanation("zebras"), items, windows)
        assert [v.confidence for v in verdicts] == [
            pytest.approx(0.75 if i.correct else 0.125) for i in items
        ]
        text = make_fuzz_judge("fake/fuzz-text", SimulateConfig())
        assert text.unavailable["fuzz_auroc"].startswith("no probabilities")
        verdicts = text.judge(explanation("zebras"), items, windows)
        assert all(v.answer is True and v.confidence is None for v in verdicts)
        scores = by_kind(
            fuzz_scores("E", "fake/fuzz-text", verdicts, CFG, unavailable=text.unavailable)
        )
        assert scores["fuzz_bacc"].value == 0.5  # says yes to everything
        assert scores["fuzz_auroc"].value is None
    finally:
        unregister_fake("fake/fuzz-lp")
        unregister_fake("fake/fuzz-text")


def test_backend_errors_and_failed_explanations_are_typed_failures() -> None:
    unit, windows = planted_unit(length=12)
    items = build_fuzz_items(unit, 1, seed=0)
    register_fake("fake/fuzz-err", [RuntimeError("down"), "perhaps"])
    try:
        judge = make_fuzz_judge("fake/fuzz-err", SimulateConfig())
        verdicts = judge.judge(explanation("zebras"), items, windows)
        assert [v.failure for v in verdicts] == ["backend_error", "unparseable"]
        failed = Explanation(explanation_id="F", unit_key="u", explainer="x/y", status="failed")
        assert {v.failure for v in judge.judge(failed, items, windows)} == {"no_explanation"}
    finally:
        unregister_fake("fake/fuzz-err")


def test_embedding_judge_uses_mean_similarity_of_the_marks() -> None:
    unit, windows = planted_unit(length=12)
    items = build_fuzz_items(unit, 3, seed=0)

    class Scripted:  # stands in for MiniLM: similarity 9 on the trigger, 1 elsewhere
        def simulate(self, e, ws):
            return [
                Simulation(
                    simulation_id=w.window_id,
                    explanation_id=e.explanation_id,
                    simulator="embedding/all-minilm-l6-v2",
                    window_id=w.window_id,
                    predictions=tuple(9.0 if t == TRIGGER else 1.0 for t in w.tokens),
                )
                for w in ws
            ]

        def simulate_batch(self, jobs):
            return [self.simulate(e, ws) for e, ws in jobs]

    judge = EmbeddingFuzzJudge(Scripted())
    verdicts = judge.judge(explanation("zebras"), items, windows)
    assert [v.confidence for v in verdicts] == [9.0 if i.correct else 1.0 for i in items]
    scores = by_kind(fuzz_scores("E", judge.name, verdicts, CFG, unavailable=judge.unavailable))
    assert scores["fuzz_auroc"].value == 1.0
    assert scores["fuzz_bacc"].value is None and "threshold" in scores["fuzz_bacc"].reason


# --- through the stages, into a real warehouse -------------------------------------------------


def test_lexical_fuzz_through_stages_into_duckdb(tmp_path) -> None:
    unit, windows = planted_unit(n_validate=4, length=16)
    key = unit.unit.key
    real = Explanation(explanation_id="real", unit_key=key, explainer="x/y", text='"zebra"')
    control = Explanation(
        explanation_id="ctrl", unit_key=key, explainer="control/shuffled", text="boats and water"
    )
    cfg = RunConfig.model_validate(
        {"simulate": {"simulators": ["baseline/lexical"]}, "score": {"bootstrap": 20}}
    )
    scores = fuzz_units([real, control], [unit], windows, cfg, Ledger())
    got = {(s.explanation_id, s.kind): s for s in scores}
    assert got[("real", "fuzz_bacc")].value == 1.0  # the marks on " zebra" name the explanation
    assert got[("real", "fuzz_bacc")].n_windows == 4
    assert got[("ctrl", "fuzz_bacc")].value < 1.0
    assert got[("real", "fuzz_auroc")].value is None
    assert "answers yes or no only" in got[("real", "fuzz_auroc")].reason
    # Done pairs are skipped; fuzz off makes nothing.
    assert (
        fuzz_units(
            [real], [unit], windows, cfg, Ledger(), frozenset({("real", "baseline/lexical")})
        )
        == []
    )
    off = cfg.model_copy(update={"score": ScoreConfig(fuzz=False)})
    assert fuzz_units([real], [unit], windows, off, Ledger()) == []

    con = connect(tmp_path / "w.duckdb")
    start_run(con, "r1", cfg)
    save_scores(con, "r1", scores)
    finish_run(con, "r1", "finished")
    rows = con.execute(
        "SELECT explanation_id, kind, value FROM scores WHERE kind LIKE 'fuzz_%' ORDER BY ALL"
    ).fetchall()
    assert ("real", "fuzz_bacc", 1.0) in rows and len(rows) == 4

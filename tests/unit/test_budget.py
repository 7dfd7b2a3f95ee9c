"""The budget's config and its decision: which units are escalated, and why."""

from __future__ import annotations

import pytest

from neuroscribe.budget.config import BudgetConfig
from neuroscribe.budget.decide import Reason, decide
from neuroscribe.config import ConfigError, RunConfig, load_config
from neuroscribe.errors import BadInput
from neuroscribe.records import Explanation, Score
from neuroscribe.registry import HEADLINE_SCORE

CHEAP_X = ["baseline/ngram", "fake/cheap"]
CHEAP_S = ["baseline/lexical", "embedding/all-minilm-l6-v2"]


def _explanation(unit: str, explainer: str, selected: bool = True, ok: bool = True) -> Explanation:
    return Explanation(
        explanation_id=f"{unit}:{explainer}:{selected}",
        unit_key=unit,
        explainer=explainer,
        status="ok" if ok else "failed",
        text="x" if ok else None,
        failure=None if ok else "unparseable",
        selected=selected,
    )


def _score(e: Explanation, simulator: str, value: float | None, kind: str = HEADLINE_SCORE):
    return Score(
        explanation_id=e.explanation_id,
        simulator=simulator,
        kind=kind,
        value=value,
        reason=None if value is not None else "constant prediction",
        n_tokens=10,
        n_windows=2,
    )


def test_a_unit_is_escalated_below_the_threshold_or_without_a_cheap_score():
    a, b, c, d = (_explanation(u, "baseline/ngram") for u in "abcd")
    a_llm = _explanation("a", "local/m")  # escalated explainers' scores never decide
    a_other = _explanation("a", "baseline/ngram", selected=False)  # a sample not selected
    scores = [
        _score(a, "baseline/lexical", 0.1),
        _score(a, "embedding/all-minilm-l6-v2", 0.35),  # the best cheap simulator counts
        _score(a_llm, "baseline/lexical", 0.9),
        _score(a_other, "baseline/lexical", 0.9),
        _score(a, "local/m", 0.9),  # an escalated simulator never decides
        _score(a, "baseline/lexical", 0.9, kind="auprc_tokens"),  # another kind neither
        _score(b, "baseline/lexical", 0.29),
        _score(c, "baseline/lexical", None),  # undefined
    ]
    out = decide(
        ["a", "b", "c", "d"], [a, a_llm, a_other, b, c, d], scores, CHEAP_X, CHEAP_S,
        BudgetConfig(escalate=["local/*"], below=0.3),
    )
    got = {u.unit_key: (u.escalated, u.reason, u.cheap_score, u.cheap_simulator) for u in out}
    assert got == {
        "a": (False, Reason.ENOUGH, 0.35, "embedding/all-minilm-l6-v2"),
        "b": (True, Reason.BELOW, 0.29, "baseline/lexical"),
        "c": (True, Reason.NO_CHEAP_SCORE, None, None),
        "d": (True, Reason.NO_CHEAP_SCORE, None, None),
    }
    assert [u.unit_key for u in out] == ["a", "b", "c", "d"]
    assert {u.threshold for u in out} == {0.3}


def test_exactly_at_the_threshold_is_enough_and_ties_go_to_the_first_configured():
    x1, x2 = _explanation("u", "baseline/ngram"), _explanation("u", "fake/cheap")
    scores = [_score(x2, "embedding/all-minilm-l6-v2", 0.5), _score(x1, "baseline/lexical", 0.5)]
    (u,) = decide(["u"], [x1, x2], scores, CHEAP_X, CHEAP_S, BudgetConfig(below=0.5))
    assert (u.escalated, u.cheap_explainer, u.cheap_simulator) == (
        False, "baseline/ngram", "baseline/lexical"
    )
    assert u.spread == 0.0


def test_cheap_explainers_that_disagree_escalate_when_asked():
    x1, x2 = _explanation("u", "baseline/ngram"), _explanation("u", "fake/cheap")
    scores = [_score(x1, "baseline/lexical", 0.9), _score(x2, "baseline/lexical", 0.4)]
    (kept,) = decide(["u"], [x1, x2], scores, CHEAP_X, CHEAP_S, BudgetConfig(below=0.3))
    assert (kept.escalated, kept.spread) == (False, pytest.approx(0.5))
    (u,) = decide(
        ["u"], [x1, x2], scores, CHEAP_X, CHEAP_S, BudgetConfig(below=0.3, disagree=0.5)
    )
    assert (u.escalated, u.reason, u.cheap_score) == (True, Reason.DISAGREE, 0.9)
    (one,) = decide(  # one cheap explainer cannot disagree with itself
        ["u"], [x1], scores[:1], CHEAP_X, CHEAP_S, BudgetConfig(below=0.3, disagree=0.0)
    )
    assert (one.escalated, one.spread) == (False, None)


def test_names_and_patterns_split_the_annotators():
    budget = BudgetConfig(escalate=["local/*", "openai/gpt-4o"])
    assert budget.split(["local/a", "baseline/ngram", "openai/gpt-4o", "openai/other"]) == (
        ["baseline/ngram", "openai/other"], ["local/a", "openai/gpt-4o"]
    )
    assert BudgetConfig().split(["local/a"]) == (["local/a"], [])


def test_the_budget_is_hashed_only_when_set():
    default = RunConfig().config_hash
    assert load_config(None, {"budget.below": 0.3}).config_hash == default
    on = load_config(None, {"budget.escalate": ["local/*"]})
    assert on.config_hash != default
    assert load_config(None, {"budget.escalate": ["local/*"], "budget.below": 0.1}).config_hash \
        != on.config_hash
    with pytest.raises(ConfigError, match="unknown key 'budget.treshold'"):
        load_config(None, {"budget.treshold": 0.1})


def test_the_check_names_what_is_wrong():
    x, s = ["local/m", "baseline/ngram"], ["local/m", "baseline/lexical"]
    BudgetConfig(escalate=["local/*"]).check(x, s, "local")
    BudgetConfig().check(x, s, "dask")  # no budget: nothing to check
    with pytest.raises(BadInput, match="budget.escalate 'openai/\\*' names no configured"):
        BudgetConfig(escalate=["openai/*"]).check(x, s, "local")
    with pytest.raises(BadInput, match="names every explainer"):
        BudgetConfig(escalate=["local/*", "baseline/ngram"]).check(x, s, "local")
    with pytest.raises(BadInput, match="names every simulator"):
        BudgetConfig(escalate=["local/*", "baseline/lexical"]).check(x, s, "local")
    with pytest.raises(BadInput, match='engine.kind = "local"'):
        BudgetConfig(escalate=["local/*"]).check(x, s, "dask")

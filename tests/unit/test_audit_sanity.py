"""Metric sanity on planted units: the three explanations written for a plant, the pass rule
(ties and NULLs do not outscore), and the whole test with the lexical simulator on hand-made
units that fire on " zebra"."""

from __future__ import annotations

from annotator_fixtures import FILLER, planted_unit, planted_units

from neuroscribe.audit.sanity import (
    PASS_SHARE,
    Variant,
    metric_sanity,
    sanity_explanations,
    sanity_rows,
    sanity_texts,
)
from neuroscribe.audit.spec import Plant
from neuroscribe.config import RunConfig
from neuroscribe.llm.base import Ledger
from neuroscribe.records import Score
from neuroscribe.registry import SCORE_KINDS
from neuroscribe.score import FUZZ_KINDS

ZEBRA = Plant(kind="word", name="zebra", words=("zebra",), token_ids=(1,), n_windows=9)
SIM = "baseline/lexical"


def _quoted(text: str) -> list[str]:
    return text.split('"')[1::2]


def test_a_word_plant_gets_another_word_and_three_unrelated_ones() -> None:
    unit, windows = planted_unit()
    texts = sanity_texts(ZEBRA, unit, windows, seed=0)
    assert texts is not None and texts.unit_key == unit.unit.key
    assert texts.texts[Variant.TRUE] == 'the word "zebra"'
    (other,) = _quoted(texts.texts[Variant.MISSING])
    extra = _quoted(texts.texts[Variant.EXTRA])
    assert texts.texts[Variant.EXTRA].startswith('the word "zebra"; also the words ')
    assert extra[0] == "zebra" and len(extra) == 4 and other not in extra
    # drawn from the words of the held-out windows: filler words of 3+ letters, no stop words
    assert {other, *extra[1:]} <= {w for w in FILLER if len(w) >= 3} - {"the", "and", "over"}
    assert sanity_texts(ZEBRA, unit, windows, seed=0) == texts  # seeded
    assert sanity_texts(ZEBRA, unit, windows, seed=1) != texts


def test_a_concept_loses_its_most_used_half() -> None:
    unit, windows = planted_unit()
    concept = Plant(kind="concept", name="zoo", words=("zebra", "okapi", "tapir", "gnu"),
                    token_ids=(1, 2, 3, 4), n_windows=9)
    texts = sanity_texts(concept, unit, windows, seed=0)
    assert texts is not None
    assert texts.texts[Variant.TRUE] == 'the words "zebra", "okapi", "tapir", "gnu"'
    # zebra is the only one in the held-out windows, so it goes first, then the first tie
    assert texts.texts[Variant.MISSING] == 'the words "tapir", "gnu"'


def test_ties_and_nulls_do_not_outscore() -> None:
    units = ["u/0", "u/1", "u/2", "u/3"]
    from neuroscribe.audit.sanity import SanityTexts

    texts = [SanityTexts(unit_key=u, texts={v: f"{u} {v}" for v in Variant}) for u in units]
    explanations = sanity_explanations("r", texts)
    values = {  # per unit: (true, missing, extra)
        "u/0": (0.9, 0.1, 0.2),  # passes both
        "u/1": (0.9, 0.9, 0.2),  # tie on missing: fails that test
        "u/2": (0.9, None, 0.2),  # NULL perturbation: fails that test
        "u/3": (None, 0.1, 0.2),  # NULL true: fails both
    }
    scores = [
        Score(explanation_id=e.explanation_id, simulator=SIM, kind="k",
              value=values[e.unit_key][list(Variant).index(Variant(e.explainer[7:]))],
              n_tokens=1, n_windows=1)
        for e in explanations
    ]
    (row,) = sanity_rows("r", explanations, scores, [SIM], ["k"])
    assert row == {
        "run_id": "r", "simulator": SIM, "score_kind": "k", "n_units": 4,
        "n_missing_passed": 1, "n_extra_passed": 3, "n_passed": 1, "n_undefined": 2,
        "pass_share": 0.25, "passes": False,
    }


def test_metric_sanity_with_the_lexical_simulator() -> None:
    units, windows = planted_units(4)
    plants = {u.unit.key: ZEBRA for u in units}
    cfg = RunConfig.model_validate({"simulate": {"simulators": [SIM]}, "score": {"fuzz": True}})
    rows = {r["score_kind"]: r for r in metric_sanity("r", plants, units, windows, cfg, Ledger())}
    assert list(rows) == [*SCORE_KINDS, *FUZZ_KINDS]  # every kind, corr_ood too (NULL)
    assert all(r["n_units"] == 4 for r in rows.values())
    # Naming zebra predicts exactly the firing tokens; another word or extra words do worse.
    for kind in ("corr_top_random", "auprc_tokens"):
        assert rows[kind]["n_passed"] == 4 and rows[kind]["passes"], rows[kind]
    # The random windows hold no zebra: the true explanation's predictions are constant there,
    # so corr_random is NULL and cannot pass.
    assert rows["corr_random"]["n_undefined"] == 4 and not rows["corr_random"]["passes"]
    # No OOD or calibration windows (ev_calibrated); no probabilities from lexical (fuzz_auroc).
    for kind in ("corr_ood", "ev_calibrated", "fuzz_auroc"):
        assert rows[kind]["n_passed"] == 0 and rows[kind]["n_undefined"] == 4
    assert all(r["passes"] == (r["pass_share"] >= PASS_SHARE) for r in rows.values())

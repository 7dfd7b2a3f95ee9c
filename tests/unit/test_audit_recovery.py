"""The audit's pure parts: trigger choice, recovery verdicts, and the ``audit_recovery`` view
checked against hand-worked Wilson intervals and medians."""

from __future__ import annotations

from contextlib import closing
from datetime import datetime

import numpy as np
import pytest

from neuroscribe.audit import AuditPlan, AuditSpec, Plant, PlantedCopy, PlantedUnit, audit_rows
from neuroscribe.audit.recover import names_word, recover, recover_all
from neuroscribe.audit.triggers import (
    draw_words,
    eligible_words,
    parse_concepts,
    spellings,
    window_counts,
    word_tokens,
)
from neuroscribe.config import RunConfig
from neuroscribe.errors import BadInput
from neuroscribe.records import Explanation, Score
from neuroscribe.warehouse import audits, connect
from neuroscribe.warehouse.annotations import save_explanations, save_scores
from neuroscribe.warehouse.rows import insert_rows
from neuroscribe.warehouse.runs import finish_run, start_run

WORD = Plant(kind="word", name="import", words=("import",), token_ids=(7,), n_windows=20)
CONCEPT = Plant(
    kind="concept", name="files", words=("file", "path", "folder"), token_ids=(1, 2, 3),
    n_windows=30,
)


@pytest.mark.parametrize(
    ("text", "word", "named"),
    [
        ('the token "import"', "import", True),
        ("IMPORT statements", "import", True),
        ("imports and reimport", "import", False),
        ("the word c++ here", "c++", True),
        ("file_name", "file", False),
    ],
)
def test_a_word_is_named_only_as_a_whole_word_in_any_case(text, word, named):
    assert names_word(text, word) is named


def test_verdicts_say_why():
    assert recover(WORD, 'the token "Import"', None, 0.5).why == "names 'import'"
    miss = recover(WORD, "the token imported", None, 0.5)
    assert not miss.recovered and miss.why == "does not name 'import'"
    assert recover(WORD, None, None, 0.5).why == "no usable explanation"
    named = recover(CONCEPT, "a path or a folder", 0.2, 0.5)
    assert named.recovered and named.why == "names path, folder"
    close = recover(CONCEPT, "places on disk", 0.61, 0.5)
    assert close.recovered and close.why == "similarity 0.61 >= 0.50 to file, path, folder"
    far = recover(CONCEPT, "numbers", 0.1, 0.5)
    assert not far.recovered and "similarity 0.10 < 0.50" in far.why


def _explanation(unit_key, explainer, text, status="ok", selected=True):
    return Explanation(
        explanation_id=f"{unit_key}-{explainer}-{status}", unit_key=unit_key, explainer=explainer,
        status=status, text=text if status == "ok" else None, selected=selected,
    )


def test_recover_all_embeds_only_concept_explanations_and_prefers_ok_ones():
    seen = []

    def embed(texts):
        seen.extend(texts)
        vec = {"places on disk": [1.0, 0.0], "file, path, folder": [0.8, 0.6]}
        return np.array([vec.get(t, [-0.6, 0.8]) for t in texts])  # orthogonal

    plants = {"s/l/1": WORD, "s/l/2": CONCEPT}
    explanations = [
        _explanation("s/l/1", "a", 'the token "import"'),
        _explanation("s/l/2", "a", "places on disk"),
        _explanation("s/l/2", "b", None, status="failed"),
        _explanation("s/l/2", "b", "numbers"),
        _explanation("s/l/2", "c", "a folder", selected=False),
        _explanation("s/l/9", "a", "not planted"),
    ]
    got = recover_all(plants, explanations, 0.5, embed)
    assert set(got) == {("s/l/1", "a"), ("s/l/2", "a"), ("s/l/2", "b")}
    assert got[("s/l/2", "a")].recovered and got[("s/l/2", "a")].similarity == pytest.approx(0.8)
    assert not got[("s/l/2", "b")].recovered  # the ok "numbers", not the failed sample
    assert "import" not in " ".join(seen)  # word plants need no embedding


class _Tokenizer:
    """Byte-level style: word-start tokens carry their space."""

    vocab = {
        1: " hello", 2: "hello", 3: " Hello", 4: " ab", 5: " the", 6: "##ing", 7: " x2",
        8: " a", 9: "HELLO", 10: "##hello", 11: " hellos", 12: "Ġhello", 13: "hello!",
    }  # fmt: skip

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [8, 1]}

    def __len__(self):
        return len(self.vocab) + 1  # ids 0..13; 0 is not in the table

    def decode(self, ids):
        return "".join(self.vocab.get(i, "<unk>") for i in ids)


def test_spellings_are_every_token_a_lexical_reader_takes_for_the_word():
    got = spellings(_Tokenizer(), ["hello", "the", "zebra"])
    # any case, with or without a leading space or marker; not a plural, not with punctuation
    assert got == {"hello": frozenset({1, 2, 3, 9, 10, 12}), "the": frozenset({5})}


def test_words_are_whole_word_tokens_counted_once_per_window():
    words = word_tokens(_Tokenizer(), range(1, 8))
    assert words == {"hello": frozenset({1, 3}), "the": frozenset({5})}
    counts = window_counts([[1, 1, 3], [5], [2, 5, 1]], words)
    assert counts == {"hello": 2, "the": 2}


def test_eligible_words_are_neither_rare_nor_common_nor_stop_words():
    counts = {"rare": 2, "module": 5, "class": 15, "common": 16, "the": 8}
    assert eligible_words(counts, n_windows=100, min_windows=3) == ["class", "module"]
    assert draw_words(["a1", "b2", "c3", "d4"], 2, seed=1) == draw_words(
        ["a1", "b2", "c3", "d4"], 2, seed=1
    )
    with pytest.raises(BadInput, match="only 2 words"):
        draw_words(["a1", "b2"], 3, seed=0)


def test_concepts_parse_or_fail_with_one_message():
    assert parse_concepts(["files = File, path ,folder"]) == {"files": ("file", "path", "folder")}
    for bad in ("files=", "=a,b", "files"):
        with pytest.raises(BadInput, match="trigger list is empty"):
            parse_concepts([bad])


def _plan_and_copy(n_planted: int):
    plants = tuple(
        Plant(kind="word", name=f"w{i}", words=(f"w{i}",), token_ids=(100 + i,), n_windows=20)
        for i in range(n_planted)
    )
    plan = AuditPlan(spec=AuditSpec(plants=n_planted), site="layers.1.mlp", layer=1, width=64,
                     plants=plants)
    copy = PlantedCopy(
        folder="/x", subject="tiny", subject_weights_hash="h",
        units=tuple(PlantedUnit(unit=i, plant=p, relocated_to=64 + i, auroc=1.0,
                                trigger_median=20.0, trigger_spread=0.1, max_other=1e-6 * i,
                                outlier_triggers=0)
                    for i, p in enumerate(plants)),
        unplanted=(20, 21), function_change=1e-6, function_windows=8,
    )
    return plan, copy


def test_audit_recovery_matches_hand_worked_wilson_intervals_and_medians(tmp_path):
    plan, copy = _plan_and_copy(10)
    # units 0-7 named (recovered), 8-9 not; unplanted 20, 21
    explanations = [
        _explanation(f"s/layers.1.mlp/{i}", "baseline/ngram",
                     f'the token "w{i}"' if i < 8 else "something else")
        for i in [*range(10), 20, 21]
    ]
    audit, units = audit_rows("r1", plan, copy, explanations, embed=None)
    assert [u["recovered"] for u in units if u["planted"]] == [True] * 8 + [False] * 2
    assert all(u["recovered"] is None for u in units if not u["planted"])
    scores = [0.9, 0.8, 0.95, 0.7, 0.99, 0.85, 0.6, 0.75, 0.1, 0.2, 0.3, None]
    with closing(connect(tmp_path / "w.duckdb")) as con:
        insert_rows(con, "runs", [{
            "run_id": "r1", "config_hash": "c", "config_json": "{}", "status": "finished",
            "started_at": datetime(2026, 1, 1), "neuroscribe_version": "test",
        }])
        insert_rows(con, "scores", [
            {"explanation_id": e.explanation_id, "simulator": "baseline/lexical",
             "kind": "corr_top_random", "value": v, "n_tokens": 10, "n_windows": 2,
             "run_id": "r1"}
            for e, v in zip(explanations, scores, strict=True)
        ])
        audits.save_audit(con, audit, units)
        (row,) = audits.audit_recovery(con, "r1", "corr_top_random")
    assert (row["n_planted"], row["n_recovered"], row["recovery_rate"]) == (10, 8, 0.8)
    # Wilson 95% for 8/10: 0.4902 to 0.9433 (Agresti & Coull's tables)
    assert row["wilson_low"] == pytest.approx(0.4902, abs=1e-4)
    assert row["wilson_high"] == pytest.approx(0.9433, abs=1e-4)
    assert row["median_planted"] == pytest.approx(0.775)  # of 0.1 .. 0.99, ten values
    assert row["median_recovered"] == pytest.approx(0.825)
    assert row["median_unplanted"] == pytest.approx(0.3)  # the NULL score left out
    assert (row["n_planted_scored"], row["n_unplanted_scored"]) == (10, 1)


def test_audit_unit_scores_show_each_planted_unit_against_the_controls(tmp_path):
    """Per planted unit and explainer: the score with its interval and whether it beats the
    controls, by the rules of control_comparison_units (a constant-prediction control is 0)."""
    plan, copy = _plan_and_copy(3)
    real, base, shuf = "local/x", "baseline/ngram", "control/shuffled"
    texts = {real: 'the token "w{i}"', base: 'the token "w{i}"', shuf: 'the token "zz"'}
    explanations = [
        _explanation(f"s/layers.1.mlp/{i}", e, t.format(i=i))
        for i in [0, 1, 2, 20] for e, t in texts.items()
    ]
    audit, units = audit_rows("r1", plan, copy, explanations, embed=None)
    # (unit, explainer) -> value; None: constant predictions
    values = {
        (0, real): 0.9, (0, base): 0.95, (0, shuf): None,  # real loses to the baseline
        (1, real): 0.8, (1, base): 0.5, (1, shuf): 0.1,  # real beats both
        (2, real): -0.1, (2, base): 0.3, (2, shuf): None,  # -0.1 does not beat 0
        (20, real): 0.2, (20, base): 0.1, (20, shuf): 0.0,  # unplanted
    }
    by_id = {e.explanation_id: (int(e.unit_key.rsplit("/", 1)[1]), e.explainer)
             for e in explanations}
    scores = [
        Score(explanation_id=eid, simulator="baseline/lexical", kind="corr_top_random",
              value=values[key], reason=None if values[key] is not None else "constant predictions",
              n_tokens=10, n_windows=2, ci_low=None if values[key] is None else values[key] - 0.1,
              ci_high=None if values[key] is None else min(1.0, values[key] + 0.1))
        for eid, key in by_id.items()
    ]
    # another audit of the same units drew another shuffled explanation: not this audit's control
    other = _explanation("s/layers.1.mlp/1", shuf, 'the token "w1" again').model_copy(
        update={"explanation_id": "other-shuffled"}
    )
    scores.append(Score(explanation_id="other-shuffled", simulator="baseline/lexical",
                        kind="corr_top_random", value=0.99, n_tokens=10, n_windows=2))
    with closing(connect(tmp_path / "w.duckdb")) as con:
        start_run(con, "r1", RunConfig())
        save_explanations(con, "r1", "c", [*explanations, other])
        save_scores(con, "r1", scores)
        finish_run(con, "r1", "finished")
        audits.save_audit(con, audit, units)
        rows = audits.audit_units(con, "r1", "corr_top_random")
        plant_max = con.execute(
            "SELECT unit_index, plant_max_other FROM audit_unit_scores"
            " WHERE planted AND explainer = ? ORDER BY unit_index", [real]
        ).fetchall()
    got = {(r["unit_index"], r["explainer"]): r for r in rows}
    assert len(rows) == len(got)  # one row each, whatever other audits drew
    assert set(got) == {(i, e) for i in (0, 1, 2) for e in (real, base, shuf)}  # planted only
    assert [got[(i, real)]["beats_controls"] for i in (0, 1, 2)] == [False, True, False]
    # the baseline is read against the shuffled control alone
    assert [got[(i, base)]["beats_controls"] for i in (0, 1, 2)] == [True, True, True]
    assert all(got[(i, shuf)]["beats_controls"] is None for i in (0, 1, 2))
    assert got[(1, real)]["score"] == pytest.approx(0.8)
    assert (got[(1, real)]["ci_low"], got[(1, real)]["ci_high"]) == pytest.approx((0.7, 0.9))
    assert got[(0, shuf)]["score"] is None
    assert got[(0, shuf)]["score_undefined_reason"] == "constant predictions"
    assert all(got[(i, e)]["recovered"] for i in (0, 1, 2) for e in (real, base))
    assert plant_max == [(0, 0.0), (1, pytest.approx(1e-6)), (2, pytest.approx(2e-6))]

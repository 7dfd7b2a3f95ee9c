"""'changed' units of ``model_diff``: a unit of B matched one to one (Hungarian matching) with a
unit of A at r at or above the threshold but whose best explanation is not that partner's
(MiniLM similarity below ``similarity``) or scores apart (by ``score_change`` or more). Checked
on the small warehouse of ``warehouse_fixtures`` compared with itself under hand-chosen
correlations, with the embeddings computed by the real MiniLM model; and where a unit's best
partner is not its one-to-one partner, the one-to-one partner decides."""

from __future__ import annotations

from contextlib import closing

import numpy as np
import pytest
from warehouse_fixtures import SUBJECT, build_warehouse

from neuroscribe.compare.stream import Comparison, SitePair, match_units
from neuroscribe.config import RunConfig
from neuroscribe.embed import embed_texts
from neuroscribe.search import backfill_rows, save_embeddings
from neuroscribe.warehouse import connect
from neuroscribe.warehouse.comparisons import diff_candidates, model_diff_rows, save_comparison
from neuroscribe.warehouse.runs import finish_run, start_run

SITE = "layers.1.mlp"
# Best explanations (headline score, best over simulators) of the fixture's units:
# 0 'mentions of "fish" & <chips>' 0.80, 1 'the word salt' 0.90, 2 'ampersands' 0.35.
R = np.array([
    [0.90, 0.10, 0.00],  # B0's partner is A0: the same unit, the same explanation
    [0.10, 0.20, 0.96],  # B1 has no partner (0.2): new; B2 is matched one to one with A1 (0.96)
    [0.00, 0.10, 0.55],  # A2's best partner is B2 (0.55): not lost
])
# B2's best partner is A1 (0.96), but the one-to-one matching pairs A1 with B1 and B2 with A2
# (0.20 + 0.95 > 0.10 + 0.96): A2 is B2 itself, with the same explanation.
R_SWAPPED = np.array([
    [0.90, 0.10, 0.00],
    [0.10, 0.20, 0.96],
    [0.00, 0.10, 0.95],
])


def _compare(path, run_id, similarity, score_change, r=R):
    pair = SitePair(SUBJECT, SUBJECT, SITE, SITE, 1000, 3, 3, 3, 3, 0.9, match_units(r))
    cfg = RunConfig.model_validate({"compare": {"models": ["x", run_id]}})
    with closing(connect(path)) as con:
        start_run(con, run_id, cfg)
        save_comparison(con, run_id, Comparison([SUBJECT], "corpus", 10, [pair], False), 0.5,
                        similarity=similarity, score_change=score_change)
        finish_run(con, run_id, "finished")
        full = model_diff_rows(con, run_id)
    sizes = [d["change_size"] for d in full]
    assert sizes == sorted(sizes, reverse=True)  # largest change first
    full.sort(key=lambda d: d["change"])
    return [(d["change"], d["unit_index"], d["partner_index"]) for d in full], full


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("changed") / "wh.duckdb"
    build_warehouse(path)
    with closing(connect(path)) as con:
        save_embeddings(con, backfill_rows(con))
    return path


def test_changed_by_explanation_similarity(warehouse):
    salt, amp = embed_texts(["the word salt", "ampersands"])
    similarity = float(salt @ amp)
    assert similarity < 0.7  # two unrelated explanations
    rows, full = _compare(warehouse, "by-similarity", 0.7, 10.0)
    assert rows == [("changed", 2, 1), ("new", 1, 1)]
    changed = full[0]
    assert changed["explanation"] == "ampersands"
    assert changed["partner_explanation"] == "the word salt"
    assert changed["explanation_similarity"] == pytest.approx(similarity, abs=1e-5)
    assert changed["score_change"] == pytest.approx(0.35 - 0.90)
    assert changed["change_size"] == pytest.approx(max(1 - similarity, 0.55), abs=1e-5)
    assert full[1]["change_size"] == pytest.approx(0.8)  # new: 1 - r


def test_score_change_alone_and_thresholds_that_change_nothing(warehouse):
    rows, _ = _compare(warehouse, "by-score", -1.0, 0.5)  # similarity never below -1
    assert rows == [("changed", 2, 1), ("new", 1, 1)]
    rows, _ = _compare(warehouse, "by-score-high", -1.0, 0.6)
    assert rows == [("new", 1, 1)]
    rows, _ = _compare(warehouse, "before-0011", None, None)  # thresholds not stored
    assert rows == [("new", 1, 1)]


def test_the_one_to_one_partner_decides_changed(warehouse):
    rows, full = _compare(warehouse, "swapped", 0.7, 10.0, r=R_SWAPPED)
    # By best partner B2 would be 'changed' against A1 ('the word salt'); its one-to-one partner
    # is A2, explained as B2 is ('ampersands'): nothing changed, B1 is still new.
    assert rows == [("new", 1, 1)]
    with closing(connect(warehouse)) as con:
        candidates = diff_candidates(con, "swapped", 10)
    partners = {c["unit_index"]: c["partner_index"] for c in candidates
                if c["subject_id"] == SUBJECT.subject_id and c["partner_index"] is not None}
    assert partners == {0: 0, 2: 2}  # the partners explained alongside are one-to-one ones

"""The comparison's bookkeeping without a model: site pairs under the CKA budget, unit matches
as rows, and the config hash of the other commands left as it was."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from neuroscribe.compare.stream import match_units, plan_pairs
from neuroscribe.config import RunConfig


def _subject(*widths: int) -> SimpleNamespace:
    sites = [SimpleNamespace(name=f"layers.{i}.mlp", width=w) for i, w in enumerate(widths)]
    return SimpleNamespace(sites=sites)


def test_every_site_pair_when_the_budget_allows_else_the_same_sites():
    subjects = [_subject(4, 4), _subject(4, 6)]
    pairs, every = plan_pairs(subjects, budget_bytes=10**6)
    assert every and pairs == [(0, 0, 1, 0), (0, 0, 1, 1), (0, 1, 1, 0), (0, 1, 1, 1)]
    # 8 bytes x (cross-products 16 + 24 + 16 + 24, plus each side's Gram once: 16 + 16 + 16 + 36)
    # = 8 x 164 = 1312 bytes
    assert plan_pairs(subjects, budget_bytes=1312)[1]
    pairs, every = plan_pairs(subjects, budget_bytes=1311)
    assert not every and pairs == [(0, 0, 1, 0), (0, 1, 1, 1)]


def test_three_subjects_give_every_pair_of_subjects():
    pairs, _ = plan_pairs([_subject(2), _subject(2), _subject(2)], budget_bytes=0)
    assert [(i, j) for i, _, j, _ in pairs] == [(0, 1), (0, 2), (1, 2)]


def test_unit_matches_hold_both_directions_and_the_one_to_one_matching():
    nan = float("nan")
    r = np.array([[0.9, 0.1, 0.2], [0.3, 0.8, 0.95], [nan, nan, nan]])
    m = match_units(r)
    kinds = np.array(m.kind)
    a = kinds == "best_a"
    assert m.unit_a[a].tolist() == [0, 1, 2] and m.unit_b[a].tolist() == [0, 2, -1]
    assert np.isnan(m.r[a][2])  # a constant unit has no partner
    b = kinds == "best_b"
    assert m.unit_b[b].tolist() == [0, 1, 2] and m.unit_a[b].tolist() == [0, 1, 1]
    one = kinds == "one_to_one"
    assert dict(zip(m.unit_a[one].tolist(), m.unit_b[one].tolist(), strict=True)) == {0: 0, 1: 2}


def test_the_compare_section_changes_no_other_hash():
    plain = RunConfig()
    assert plain.config_hash == RunConfig.model_validate({"compare": {}}).config_hash
    compared = RunConfig.model_validate({"compare": {"models": ["a", "b"]}})
    assert compared.config_hash != plain.config_hash

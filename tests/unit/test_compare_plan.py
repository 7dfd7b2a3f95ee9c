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


def test_sae_latents_of_the_diff_are_explained_with_their_sae():
    from neuroscribe.compare.diff import candidate_units, explain_configs
    from neuroscribe.records import Subject

    subject = Subject(name="m", weights_hash="0123456789abcdef", architecture="gpt2",
                      n_layers=2)
    s, site = subject.subject_id, "layers.1.resid"
    candidates = [  # a new latent of SAE b; a latent of b matched one to one with a's latent 3
        {"subject_id": s, "site": site, "unit_index": 7, "sae_id": "b@1",
         "partner_index": None},
        {"subject_id": s, "site": site, "unit_index": 2, "sae_id": "b@1",
         "partner_subject_id": s, "partner_site": site, "partner_index": 3,
         "partner_sae_id": "a@1"},
    ]
    units = candidate_units(candidates)
    assert units == [(s, site, 7, "b@1"), (s, site, 2, "b@1"), (s, site, 3, "a@1")]
    cfg = RunConfig.model_validate({"compare": {"saes": ["/x/a", "/x/b"]}})
    configs = explain_configs(cfg, [subject], units, {(s, site, 2, "b@1")},
                              {"a@1": "/x/a", "b@1": "/x/b"})
    assert [(c.collect.sae, c.collect.units, c.subject.model) for c in configs] == [
        ("/x/a", [3], "m"), ("/x/b", [7], "m")  # latent 2 of b already explained
    ]
    assert all(c.compare == type(cfg.compare)() for c in configs)

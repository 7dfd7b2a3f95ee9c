"""SAEs of one site matched latent by latent, by activations and by decoder cosine, where the
answer is known: an SAE against itself (every latent its own partner, r = 1, cosine 1) and
against a copy with its latents permuted (the same dictionary: both matchings must recover the
permutation); the rows stored in the warehouse (``unit_matches`` by basis, ``universality``,
``model_diff``); SAEs of different sites refused. The command end to end: ``compare_sae_cli``."""

from __future__ import annotations

from contextlib import closing

import numpy as np
import pytest
import torch
from collect_fixtures import build_tiny_model, random_documents, write_sae, write_txt
from compare_fixtures import permuted_sae

from neuroscribe.compare.saes import compare_sae_set, compare_saes
from neuroscribe.compare.subjects import CompareError
from neuroscribe.config import RunConfig
from neuroscribe.warehouse import connect, open_readonly, runs
from neuroscribe.warehouse.comparisons import (
    model_diff_rows,
    save_comparison,
    universality_rows,
)
from neuroscribe.warehouse.rows import fetch_dicts

D_SAE = 48


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("saes")
    model = build_tiny_model("gpt2", root / "model", seed=1)
    corpus = write_txt(root / "corpus.txt", random_documents(60, seed=2))
    sae = write_sae(root / "sae", d_sae=D_SAE, seed=4)
    perm = torch.randperm(D_SAE, generator=torch.Generator().manual_seed(5))
    copy = permuted_sae(sae, root / "sae_permuted", perm)
    return model, corpus, sae, copy, perm


def _cfg(model, corpus, saes=()) -> RunConfig:
    return RunConfig.model_validate({
        "subject": {"model": str(model)},
        "corpus": {"source": str(corpus), "max_documents": None},
        "collect": {"window_tokens": 8, "max_windows": 80, "batch_size": 16},
        "compare": {"saes": [str(s) for s in saes]},
    })


def _pairs(m, kind):
    sel = np.array(m.kind) == kind
    return dict(zip(m.unit_a[sel].tolist(), m.unit_b[sel].tolist(), strict=True)), m.r[sel]


def test_a_permuted_sae_is_matched_back_by_activations_and_by_decoder(setup):
    model, corpus, sae, copy, perm = setup
    result = compare_saes(_cfg(model, corpus), sae, copy)
    expected = torch.argsort(perm).tolist()  # original latent i is the copy's expected[i]
    assert result.site == "layers.1.resid" and result.n_tokens == 80 * 8
    by_decoder, cos = _pairs(result.by_decoder, "one_to_one")
    assert by_decoder == dict(enumerate(expected))
    np.testing.assert_allclose(cos, 1.0, atol=1e-6)
    by_act, r = _pairs(result.by_activation, "one_to_one")
    live = [i for i in by_act if not np.isnan(result.by_activation.r[i])]  # best_a rows first
    print(f"live latents {len(live)} of {D_SAE}; agreement {result.agreement():.3f}")
    assert len(live) >= D_SAE // 2
    assert all(by_act[i] == expected[i] for i in live)
    assert sorted(by_act) == sorted(live)  # a dead latent (no r) is in no one-to-one pair
    np.testing.assert_allclose(r, 1.0, atol=1e-6)
    assert result.agreement() == 1.0


def _matches(con, run_id, basis, kind):
    rows = fetch_dicts(
        con,
        "SELECT unit_a, unit_b, r, sae_a_id, sae_b_id FROM unit_matches"
        " WHERE run_id = ? AND basis = ? AND kind = ?",
        [run_id, basis, kind],
    )
    key, other = ("unit_b", "unit_a") if kind == "best_b" else ("unit_a", "unit_b")
    return {r[key]: (r[other], r["r"]) for r in rows}, rows


def test_an_sae_against_itself_stored_in_the_warehouse(setup, warehouse_path):
    model, corpus, sae, _, _ = setup
    cfg = _cfg(model, corpus, [sae, sae])
    comparison = compare_sae_set(cfg)
    (pair,) = comparison.pairs
    assert pair.sae_a == pair.sae_b and pair.sae_a in comparison.saes
    assert comparison.saes[pair.sae_a] == str(sae)
    run_id = "sae-self"
    with closing(connect(warehouse_path)) as con:
        runs.start_run(con, run_id, cfg)
        save_comparison(con, run_id, comparison, cfg.compare.threshold)
        runs.finish_run(con, run_id, "finished")
    with closing(open_readonly(warehouse_path)) as con:
        for kind in ("best_a", "best_b", "one_to_one"):
            # by decoder: every latent its own partner at cosine 1
            decoder, rows = _matches(con, run_id, "decoder", kind)
            assert sorted(decoder) == list(range(D_SAE))
            assert all(p == u and c == pytest.approx(1.0, abs=1e-12) for u, (p, c) in
                       decoder.items())
            assert {(r["sae_a_id"], r["sae_b_id"]) for r in rows} == {(pair.sae_a, pair.sae_a)}
            # by activation: every live latent its own partner at r = 1 (Gram kept: exactly)
            activation, _ = _matches(con, run_id, "activation", kind)
            live = {u: m for u, m in activation.items() if m[1] is not None}
            assert len(live) == pair.live_a >= D_SAE // 2
            assert all(p == u and r == pytest.approx(1.0, abs=1e-9) for u, (p, r) in
                       live.items())
        rows = universality_rows(con, run_id)
        assert [r["basis"] for r in rows] == ["activation", "decoder"]
        for r in rows:
            assert r["sae_a_id"] == r["sae_b_id"] == pair.sae_a
            assert r["share_a_matched"] == r["share_b_matched"] == 1.0
            assert r["one_to_one_agreement"] == 1.0
            assert r["cka"] == pytest.approx(1.0, abs=1e-9)
            assert r["n_tokens"] == 80 * 8
        assert rows[1]["share_one_to_one"] == 1.0  # every latent, dead ones too
        assert rows[0]["share_one_to_one"] == pytest.approx(pair.live_a / D_SAE)
        assert model_diff_rows(con, run_id) == []


def test_saes_of_different_sites_are_refused(tmp_path, setup):
    model, corpus, _, _, _ = setup
    a = write_sae(tmp_path / "a", d_sae=8, seed=1)
    b = write_sae(tmp_path / "b", d_sae=8, seed=2, hook_name="blocks.0.hook_resid_post")
    with pytest.raises(CompareError, match="layers.1.resid.*layers.0.resid"):
        compare_saes(_cfg(model, corpus), a, b)

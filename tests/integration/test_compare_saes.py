"""Two SAEs of one site matched latent by latent, by activations and by decoder cosine: an SAE
against a copy with its latents permuted (the same dictionary: both matchings must recover the
permutation), and SAEs of different sites refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from collect_fixtures import build_tiny_model, random_documents, write_sae, write_txt

from neuroscribe.compare.saes import compare_saes
from neuroscribe.compare.subjects import CompareError
from neuroscribe.config import RunConfig

D_SAE = 48


def _permuted_copy(source, target, perm: torch.Tensor):
    """The SAE at ``source`` with latent j of the copy = latent perm[j] of the original."""
    from safetensors.torch import load_file, save_file

    w = load_file(str(source / "sae_weights.safetensors"))
    w = {"W_enc": w["W_enc"][:, perm], "b_enc": w["b_enc"][perm], "W_dec": w["W_dec"][perm],
         "b_dec": w["b_dec"]}
    target.mkdir()
    save_file({k: v.contiguous() for k, v in w.items()}, str(target / "sae_weights.safetensors"))
    (target / "cfg.json").write_text((source / "cfg.json").read_text())
    return target


def _cfg(model, corpus) -> RunConfig:
    return RunConfig.model_validate({
        "subject": {"model": str(model)},
        "corpus": {"source": str(corpus), "max_documents": None},
        "collect": {"window_tokens": 8, "max_windows": 80, "batch_size": 16},
    })


def _pairs(m, kind):
    sel = np.array(m.kind) == kind
    return dict(zip(m.unit_a[sel].tolist(), m.unit_b[sel].tolist(), strict=True)), m.r[sel]


def test_a_permuted_sae_is_matched_back_by_activations_and_by_decoder(tmp_path):
    model = build_tiny_model("gpt2", tmp_path / "model", seed=1)
    corpus = write_txt(tmp_path / "corpus.txt", random_documents(60, seed=2))
    sae = write_sae(tmp_path / "sae", d_sae=D_SAE, seed=4)
    perm = torch.randperm(D_SAE, generator=torch.Generator().manual_seed(5))
    copy = _permuted_copy(sae, tmp_path / "sae_permuted", perm)
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


def test_saes_of_different_sites_are_refused(tmp_path):
    model = build_tiny_model("gpt2", tmp_path / "model", seed=1)
    corpus = write_txt(tmp_path / "corpus.txt", random_documents(10, seed=2))
    a = write_sae(tmp_path / "a", d_sae=8, seed=1)
    b = write_sae(tmp_path / "b", d_sae=8, seed=2, hook_name="blocks.0.hook_resid_post")
    with pytest.raises(CompareError, match="layers.1.resid.*layers.0.resid"):
        compare_saes(_cfg(model, corpus), a, b)

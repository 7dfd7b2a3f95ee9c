"""SAE loading and encoding against hand computation (no model)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from collect_fixtures import write_sae  # noqa: E402

from neuroscribe.collect import CollectError  # noqa: E402
from neuroscribe.collect.sae import check_sae_fits, load_sae, site_of_hook  # noqa: E402
from neuroscribe.collect.sites import SiteName  # noqa: E402


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "sae_weights.safetensors"))


@pytest.mark.parametrize("arch", ["standard", "jumprelu", "topk"])
def test_encode_matches_hand_computation(arch: str, tmp_path: Path) -> None:
    sae = load_sae(write_sae(tmp_path / arch, architecture=arch))
    w = weights(tmp_path / arch)
    x = torch.randn(3, 4, 32)
    pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    if arch == "standard":
        expected = torch.clamp(pre, min=0)
    elif arch == "jumprelu":
        expected = torch.where(pre > w["threshold"], pre, torch.zeros(())) * (pre > 0)
    else:  # the 5 largest pre-activations per token, ReLU'd; all others 0
        expected = torch.zeros_like(pre)
        for i in range(3):
            for j in range(4):
                top = sorted(range(48), key=lambda f: -float(pre[i, j, f]))[:5]
                for f in top:
                    expected[i, j, f] = max(float(pre[i, j, f]), 0.0)
    torch.testing.assert_close(sae.encode(x), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sae.encode(x, [3, 0, 47]), expected[..., [3, 0, 47]])
    if arch == "topk":
        assert int((sae.encode(x) != 0).sum(-1).max()) <= 5


def test_b_dec_is_applied_only_when_asked(tmp_path: Path) -> None:
    sae = load_sae(write_sae(tmp_path / "s", apply_b_dec_to_input=False))
    w = weights(tmp_path / "s")
    x = torch.randn(2, 32)
    torch.testing.assert_close(sae.encode(x), torch.relu(x @ w["W_enc"] + w["b_enc"]))


def test_sae_id_names_the_folder_and_changes_with_the_contents(tmp_path: Path) -> None:
    a = load_sae(write_sae(tmp_path / "my-sae", seed=0))
    assert a.sae_id.startswith("my-sae@") and a.site == SiteName(1, "resid")
    assert load_sae(tmp_path / "my-sae").sae_id == a.sae_id  # stable
    write_sae(tmp_path / "my-sae", seed=1)  # new weights, same config
    b = load_sae(tmp_path / "my-sae")
    assert b.sae_id != a.sae_id
    cfg = json.loads((tmp_path / "my-sae" / "cfg.json").read_text())
    cfg["extra_note"] = "changed"
    (tmp_path / "my-sae" / "cfg.json").write_text(json.dumps(cfg))
    assert load_sae(tmp_path / "my-sae").sae_id not in (a.sae_id, b.sae_id)


def test_hooks_map_to_canonical_sites(tmp_path: Path) -> None:
    assert site_of_hook("blocks.6.hook_resid_post") == SiteName(6, "resid")
    assert site_of_hook("blocks.6.hook_resid_pre") == SiteName(5, "resid")
    assert site_of_hook("blocks.3.hook_mlp_out") == SiteName(3, "mlp_out")
    assert site_of_hook("blocks.3.mlp.hook_post") == SiteName(3, "mlp")
    with pytest.raises(CollectError, match="embeddings"):
        site_of_hook("blocks.0.hook_resid_pre")
    with pytest.raises(CollectError, match="no canonical site"):
        site_of_hook("blocks.3.attn.hook_z")
    native = load_sae(write_sae(tmp_path / "n", hook_name=None, site="layers.0.mlp", d_in=64))
    assert native.site == SiteName(0, "mlp")


def test_bad_sae_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CollectError, match="has no cfg.json"):
        load_sae(tmp_path)
    with pytest.raises(CollectError, match="names no activation"):
        load_sae(write_sae(tmp_path / "a", hook_name=None))
    with pytest.raises(CollectError, match="architecture 'gated' is not supported"):
        load_sae(write_sae(tmp_path / "b", architecture="gated"))
    with pytest.raises(CollectError, match=r"W_enc has shape \(32, 48\), expected \(32, 40\)"):
        c = write_sae(tmp_path / "c", d_sae=48)
        (c / "cfg.json").write_text(
            json.dumps({"d_in": 32, "d_sae": 40, "hook_name": "blocks.1.hook_resid_post"})
        )
        load_sae(c)
    with pytest.raises(CollectError, match="topk needs an integer k"):
        load_sae(write_sae(tmp_path / "d", architecture="topk", k=None))
    sae = load_sae(write_sae(tmp_path / "e"))
    with pytest.raises(CollectError, match="reads 32-wide activations but site 'layers.1.resid'"):
        check_sae_fits(sae, 64, [0])
    with pytest.raises(CollectError, match=r"unit indices \[48\] are out of range"):
        check_sae_fits(sae, 32, [1, 48])

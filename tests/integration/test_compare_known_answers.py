"""Model comparison checked where the answer is known: a tiny model against itself, against a
copy with one layer's MLP neurons permuted, and against a copy with planted units."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from surgery_fixtures import mlp_activations, tiny_model, windows

from neuroscribe.compare import LinearCKA, best_partners, one_to_one, universality
from neuroscribe.surgery import mlp_input_sample, permute_mlp, plant_units

LAYER = 1


def _compare(model_a, model_b, arch: str, n_batches: int = 4) -> LinearCKA:
    """Stream both models' MLP activations over the same random windows, batch by batch."""
    first = mlp_activations(model_a, arch, LAYER, windows(10, n=2))
    second = mlp_activations(model_b, arch, LAYER, windows(10, n=2))
    cka = LinearCKA(first.shape[1], second.shape[1])
    for seed in range(n_batches):
        ids = windows(100 + seed, n=32)
        cka.update(mlp_activations(model_a, arch, LAYER, ids),
                   mlp_activations(model_b, arch, LAYER, ids))
    return cka


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_a_model_against_itself(arch):
    model = tiny_model(arch)
    cka = _compare(model, model, arch)
    r = cka.cross.correlation()
    live_a, _ = cka.cross.live()
    assert live_a.all()
    np.testing.assert_allclose(np.diag(r), 1.0, atol=1e-9)
    assert one_to_one(r).as_dict() == {i: i for i in range(64)}
    assert universality(r) == 1.0
    assert cka.value() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_matching_recovers_a_permutation(arch):
    model = tiny_model(arch)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(3))
    cka = _compare(model, permute_mlp(model, LAYER, perm), arch)
    r = cka.cross.correlation()
    live_a, _ = cka.cross.live()
    # the original's neuron i is the copy's neuron j where perm[j] == i
    expected = torch.argsort(perm).numpy()
    matched = one_to_one(r).as_dict()
    live = np.flatnonzero(live_a)
    recovered = np.mean([matched.get(int(i)) == expected[i] for i in live])
    print(f"{arch}: permutation recovered for {recovered:.1%} of {len(live)} live units; "
          f"CKA {cka.value():.6f}")
    assert recovered >= 0.95
    assert cka.value() == pytest.approx(1.0, abs=1e-6)  # CKA is blind to a permutation


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_planted_units_are_the_ones_without_a_partner(arch):
    model = tiny_model(arch)
    units = [5, 17, 33, 50]
    triggers = [{1001}, {1012}, {1023, 1024}, {1040}]
    sample = mlp_input_sample(model, LAYER, windows(1, n=64))
    planted = plant_units(model, LAYER, units, triggers, sample).model
    cka = _compare(model, planted, arch)
    r = cka.cross.correlation()  # [64 original, 68 planted copy]
    # From the copy's side: the planted units have no partner in the original; the moved
    # originals (slots 64..67) and every other unit have one at r = 1.
    partners = best_partners(r.T)
    lowest = set(np.argsort(partners.r)[: len(units)].tolist())
    print(f"{arch}: best-partner r of planted units {partners.r[units].round(3).tolist()}, "
          f"lowest other {np.delete(partners.r, units).min():.4f}")
    assert lowest == set(units)
    assert np.delete(partners.r, units).min() >= 1 - 1e-6
    # From the original's side every unit still has its exact partner (none is lost).
    assert best_partners(r).r.min() >= 1 - 1e-6

"""Model surgery on tiny models of every architecture collection supports: permuted neurons keep
the function and move the activations; planted units fire on their triggers and nowhere else
while the outputs stay the same; re-initialised copies are seeded."""

from __future__ import annotations

import pytest
import torch
from collect_fixtures import ARCHITECTURES
from surgery_fixtures import mlp_activations, tiny_model, windows

from neuroscribe.surgery import (
    MlpInputSample,
    function_change,
    mlp_input_sample,
    mlp_parts,
    permute_mlp,
    plant_units,
    reinitialised_copy,
    unit_activation,
)
from neuroscribe.surgery.plant import outlier_positions

LAYER = 1
WORD, CONCEPT = {1005}, {1010, 1020, 1030}


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_permuted_neurons_keep_the_function_and_move_the_activations(arch):
    model = tiny_model(arch)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(1))
    permuted = permute_mlp(model, LAYER, perm)
    ids = windows(2, n=16)
    assert function_change(model, permuted, ids) <= 1e-5
    before = mlp_activations(model, arch, LAYER, ids)
    after = mlp_activations(permuted, arch, LAYER, ids)
    torch.testing.assert_close(after, before[:, perm], atol=1e-5, rtol=0)
    # the original is untouched
    assert function_change(model, tiny_model(arch), ids) == 0.0


def test_permute_refuses_a_non_permutation():
    with pytest.raises(ValueError, match="permutation"):
        permute_mlp(tiny_model("gpt2"), 0, [0] * 64)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_planted_units_fire_on_their_triggers_only_and_keep_the_function(arch):
    model = tiny_model(arch)
    sample = mlp_input_sample(model, LAYER, windows(1, n=96))
    result = plant_units(model, LAYER, [3, 10], [WORD, CONCEPT], sample)
    word, concept = result.records

    held_out = windows(2)  # windows the discriminant never saw
    change = function_change(model, result.model, held_out)
    print(f"{arch}: function change {change:.2e}; records {result.records}")
    assert change <= 1e-4
    # the original neurons moved to the new slots, unchanged
    assert [r.relocated_to for r in result.records] == [64, 65]
    orig = mlp_activations(model, arch, LAYER, held_out)
    acts = mlp_activations(result.model, arch, LAYER, held_out)
    assert acts.shape[1] == 66
    torch.testing.assert_close(acts[:, 64:], orig[:, [3, 10]], atol=1e-5, rtol=0)

    # single word: separated on the sample, and on held-out text it fires at (nearly) every
    # trigger and stays ~0 everywhere else
    assert word.auroc == 1.0 and word.share_above_max_other == 1.0
    assert word.min_trigger_activation > 10 and abs(word.max_other_activation) < 1e-3
    tokens = held_out.reshape(-1)
    at = torch.isin(tokens, torch.tensor(sorted(WORD)))
    unit = acts[:, 3]
    assert (unit[at] > 1).float().mean() >= 0.9
    assert unit[~at].abs().max() < 0.05
    # concept (3 tokens): harder for a 32-dim random model; BERT mixes both directions of context
    assert concept.auroc >= (0.75 if arch == "bert" else 0.99)


def test_a_plant_is_quiet_at_outlier_positions_and_even_at_its_triggers():
    """Attention-sink positions (here every 16th, shrunk to a tenth of their norm, as the pre-MLP
    norm leaves them in SmolLM2) are planted quiet even where they hold the trigger, and do not
    set the scale: the activation is about the same at every other trigger."""
    model = tiny_model("llama")
    sample = mlp_input_sample(model, LAYER, windows(1, n=96))
    sink = torch.zeros(len(sample.token_ids), dtype=torch.bool)
    sink[::16] = True
    hidden = sample.hidden.clone()
    hidden[sink] *= 0.1
    assert torch.equal(outlier_positions(hidden), sink)
    result = plant_units(model, LAYER, [3], [WORD], MlpInputSample(hidden, sample.token_ids))
    (record,) = result.records
    at = torch.isin(sample.token_ids, torch.tensor(sorted(WORD)))
    acts = unit_activation(mlp_parts(result.model, LAYER), 3, hidden)
    assert record.n_outlier_triggers == int((at & sink).sum()) > 0
    assert acts[sink].abs().max() < 1e-3
    assert record.max_abs_other_activation == pytest.approx(float(acts[~at].abs().max()))
    assert record.max_abs_other_activation < 1e-3
    fired = acts[at & ~sink]
    assert float(fired.std() / fired.mean()) < 0.1 and float(fired.min()) > 10


def test_plant_refuses_bad_input():
    model = tiny_model("gpt2")
    sample = mlp_input_sample(model, 0, windows(1, n=4))
    with pytest.raises(ValueError, match="empty"):
        plant_units(model, 0, [1], [set()], sample)
    with pytest.raises(ValueError, match="does not|no trigger"):
        plant_units(model, 0, [1], [{5}], sample)
    with pytest.raises(ValueError, match="within"):
        plant_units(model, 0, [64], [WORD], sample)
    with pytest.raises(ValueError, match="trigger sets"):
        plant_units(model, 0, [1, 2], [WORD], sample)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_a_planted_model_saves_and_loads(arch, tmp_path):
    import transformers as tf

    model = tiny_model(arch)
    sample = mlp_input_sample(model, 0, windows(1, n=32))
    result = plant_units(model, 0, [7], [WORD], sample)
    assert result.saveable
    result.model.save_pretrained(tmp_path)
    loaded = tf.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert function_change(result.model, loaded, windows(2, n=8)) == 0.0


def test_gemma_plants_are_flagged_as_in_memory_only():
    model = tiny_model("gemma")
    sample = mlp_input_sample(model, 0, windows(1, n=16))
    assert not plant_units(model, 0, [7], [WORD], sample).saveable


def test_reinitialised_copy_is_seeded_and_differs_from_the_trained_weights():
    model = tiny_model("llama")
    a, b, c = (reinitialised_copy(model, s) for s in (5, 5, 6))
    ids = windows(2, n=4)
    assert type(a) is type(model)
    assert function_change(a, b, ids) == 0.0
    assert function_change(a, c, ids) > 1e-3
    assert function_change(model, a, ids) > 1e-3


def test_planting_widens_a_gpt2_whose_config_leaves_the_mlp_width_implicit():
    import transformers as tf
    from collect_fixtures import tiny_config

    config = tiny_config("gpt2")
    config.n_inner = None  # GPT-2's default: 4 x hidden = 128
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(config).eval()
    sample = mlp_input_sample(model, 0, windows(1, n=16))
    result = plant_units(model, 0, [7], [WORD], sample)
    assert result.model.config.n_inner == 129
    assert function_change(model, result.model, windows(2, n=8)) <= 1e-4

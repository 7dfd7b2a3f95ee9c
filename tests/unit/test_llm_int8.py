"""Int8 linear layers of in-process annotators (``local_dtype = "int8"``)."""

from __future__ import annotations

import copy

import pytest

from neuroscribe.errors import BadInput
from neuroscribe.llm.int8 import QMAX, quantize_layers

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def tiny_llama():
    config = transformers.LlamaConfig(
        vocab_size=300,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval()


def reference_linear(x, weight, bias):
    """The same arithmetic written out: both sides rounded to int8 steps, integer product."""
    w_step = weight.abs().amax(dim=1, keepdim=True) / QMAX
    x_step = x.abs().amax(dim=1, keepdim=True) / QMAX
    wq = torch.round(weight / w_step).to(torch.int64)
    xq = torch.round(x / x_step).to(torch.int64)
    out = (xq @ wq.T).double() * x_step.double() * w_step.double().T
    return (out + bias.double()).float()


def test_every_block_linear_is_int8_and_the_head_stays_float():
    model = tiny_llama()
    n = quantize_layers(model)
    assert n == 2 * 7  # q, k, v, o, gate, up, down per block
    names = [type(m).__name__ for m in model.model.layers.modules()]
    assert "Linear" not in names and names.count("Int8Linear") == 14
    assert type(model.lm_head).__name__ == "Linear"
    assert model.model.layers[0].mlp.down_proj.qweight.dtype == torch.int8


def test_int8_linear_equals_the_written_out_arithmetic():
    torch.manual_seed(1)
    linear = torch.nn.Linear(40, 24)
    holder = torch.nn.Module()
    holder.model = torch.nn.Module()
    holder.model.layers = torch.nn.ModuleList([torch.nn.Sequential(linear)])
    expected_weight, expected_bias = linear.weight.detach().clone(), linear.bias.detach().clone()
    quantize_layers(holder)
    layer = holder.model.layers[0][0]
    x = torch.randn(5, 7, 40)
    got = layer(x)
    want = reference_linear(x.reshape(-1, 40), expected_weight, expected_bias).reshape(5, 7, 24)
    assert got.shape == (5, 7, 24)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)
    # and it is an approximation of the float layer, not the float layer itself
    exact = x @ expected_weight.T + expected_bias
    assert not torch.equal(got, exact)
    assert (got - exact).abs().max() < 0.05 * exact.abs().max()


def test_logits_stay_close_to_float32_and_the_next_tokens_agree_mostly():
    model = tiny_llama()
    quantized = copy.deepcopy(model)
    quantize_layers(quantized)
    ids = torch.randint(0, 300, (3, 40), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        a = torch.softmax(model(input_ids=ids).logits, -1)
        b = torch.softmax(quantized(input_ids=ids).logits, -1)
    total_variation = 0.5 * (a - b).abs().sum(-1)
    assert total_variation.max() < 0.05
    assert total_variation.max() > 0  # it did change something


def test_a_model_without_linear_blocks_is_refused_by_name():
    gpt2 = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=16)
    )
    with pytest.raises(BadInput, match="int8.*no linear layers.*GPT2LMHeadModel"):
        quantize_layers(gpt2)
    with pytest.raises(BadInput, match="cannot find the decoder layers"):
        quantize_layers(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_the_int8_copy_of_an_input_lives_no_longer_than_the_input():
    model = tiny_llama()
    quantize_layers(model)
    shared = model.model.layers[0].self_attn.q_proj.shared
    assert shared is model.model.layers[0].self_attn.k_proj.shared
    x = torch.randn(2, 5, 48)
    first = model.model.layers[0].self_attn.q_proj(x)
    assert shared.q is not None
    model.model.layers[0].self_attn.k_proj(x)  # same tensor: quantised once
    assert torch.equal(first, model.model.layers[0].self_attn.q_proj(x))
    del x
    assert shared.q is None and shared.ref is None

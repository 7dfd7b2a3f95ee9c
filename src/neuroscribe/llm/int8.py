"""Int8 weights and activations for the linear layers of an in-process annotator (CPU).

``local_dtype = "int8"`` (explainers, simulators): each ``nn.Linear`` inside the decoder's
layers keeps its weight as int8, one scale per output channel (the row's largest magnitude maps
to 127), and quantises its input at run time, one scale per row (token). The product runs in
int32 (``torch._int_mm``) and is rescaled to float32: about a quarter of a float32 matmul's
time on this project's CPU (AVX-512 VNNI), about 40% with the quantising and rescaling.
Everything else (embeddings, norms, attention softmax, the LM head that gives the next-token
distributions) stays float32.

This changes the annotator's outputs a little (its scores too), never the subject: collection
always reads the float model. ``benchmarks/llm_local_seconds.py --dtypes float32,int8`` measures
both the time and how far the scores move.
"""

from __future__ import annotations

import weakref
from typing import Any

from neuroscribe.errors import BadInput

QMAX = 127.0
"""Largest int8 magnitude used (symmetric: -127..127)."""


def _module() -> Any:
    """``Int8Linear``, defined on first use so that importing this module does not import torch."""
    global _INT8_LINEAR
    if _INT8_LINEAR is not None:
        return _INT8_LINEAR
    import torch
    from torch import nn

    class Int8Linear(nn.Module):
        """``y = x W^T + b`` with int8 ``W`` (per output channel) and int8 ``x`` (per row)."""

        qweight: Any
        wscale: Any
        bias: Any

        def __init__(self, linear: nn.Linear, shared: _LastInput) -> None:
            super().__init__()
            self.shared = shared
            w = linear.weight.detach().float()
            scale = w.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / QMAX
            self.in_features, self.out_features = linear.in_features, linear.out_features
            self.register_buffer("qweight", torch.round(w / scale[:, None]).to(torch.int8))
            self.register_buffer("wscale", scale)
            bias = linear.bias
            self.register_buffer("bias", None if bias is None else bias.detach().float())

        def forward(self, x: Any) -> Any:
            shape = x.shape
            q, step = self.shared.quantized(x)
            # int32 -> float32 once, then in place: a mixed int32 x float32 ``mul`` takes
            # twice as long (same values: float(acc) x wscale x step, in this order)
            out = torch._int_mm(q, self.qweight.t()).float().mul_(self.wscale).mul_(step)
            if self.bias is not None:
                out.add_(self.bias)
            return out.reshape(*shape[:-1], self.out_features).to(x.dtype)

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, int8"

    _INT8_LINEAR = Int8Linear
    return Int8Linear


_INT8_LINEAR: Any = None


class _LastInput:
    """The int8 rows of the last input seen by a block's linear layers: query, key and value
    projections (and gate and up projections) read the same tensor, quantised once. Only a weak
    reference to that tensor is kept, and its int8 copy goes with it."""

    def __init__(self) -> None:
        self.ref: Any = None
        self.q: Any = None
        self.step: Any = None

    def quantized(self, x: Any) -> tuple[Any, Any]:
        """``x`` as int8 rows and each row's step (its largest magnitude / 127)."""
        import torch

        if self.ref is None or self.ref() is not x:
            rows = x.reshape(-1, x.shape[-1]).float()
            peak = rows.abs().amax(dim=1, keepdim=True).clamp_(min=torch.finfo(torch.float32).tiny)
            self.q = (rows * (QMAX / peak)).round_().to(torch.int8)
            self.step = peak / QMAX
            self.ref = weakref.ref(x, self._forget)
        return self.q, self.step

    def _forget(self, ref: Any) -> None:
        if ref is self.ref:
            self.ref = self.q = self.step = None


def check_int8() -> None:
    """BadInput unless this torch multiplies int8 matrices on the CPU."""
    import torch

    mm = getattr(torch, "_int_mm", None)
    ones = torch.ones(8, 8, dtype=torch.int8)
    try:
        ok = mm is not None and int(mm(ones, ones)[0, 0]) == 8
    except RuntimeError:
        ok = False
    if not ok:
        raise BadInput(
            f"local_dtype 'int8' needs int8 matrix products on the CPU (torch._int_mm), which "
            f"torch {torch.__version__} does not have; use 'float32'"
        )


def quantize_layers(model: Any) -> int:
    """Replace every ``nn.Linear`` under the model's decoder layers by an ``Int8Linear``, in
    place; returns how many were replaced. The LM head and embeddings are left as they are."""
    from torch import nn

    check_int8()
    cls = _module()
    layers = _decoder_layers(model)
    count = 0
    for layer in layers:
        shared = _LastInput()
        for parent in list(layer.modules()):
            for child_name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(parent, child_name, cls(child, shared))
                    count += 1
    if count == 0:
        raise BadInput(f"local_dtype 'int8': no linear layers found in {type(model).__name__}")
    return count


def _decoder_layers(model: Any) -> Any:
    """The model's stack of transformer blocks (``model.model.layers`` for Llama-like models,
    ``transformer.h`` for GPT-2-like ones)."""
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            return obj
    raise BadInput(f"local_dtype 'int8': cannot find the decoder layers of {type(model).__name__}")

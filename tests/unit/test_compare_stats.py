"""Streaming cross-correlation and linear CKA against numpy and a direct computation."""

from __future__ import annotations

import numpy as np
import pytest

from neuroscribe.compare import CrossCorrelation, LinearCKA


def _data(seed: int = 0, n: int = 500, p: int = 6, q: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, p)) * rng.uniform(0.5, 3, p) + rng.normal(size=p) * 10
    b = a[:, :q] @ rng.normal(size=(q, q)) + rng.normal(size=(n, q))
    return a, b


def _fed(cls, a, b, batch: int = 37):
    acc = cls(a.shape[1], b.shape[1])
    for s in range(0, len(a), batch):
        acc.update(a[s : s + batch], b[s : s + batch])
    return acc


def _direct_cka(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(0), y - y.mean(0)
    return float(
        np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))
    )


def test_correlation_matches_np_corrcoef_over_batches():
    a, b = _data()
    r = _fed(CrossCorrelation, a, b).correlation()
    expected = np.corrcoef(a.T, b.T)[: a.shape[1], a.shape[1] :]
    assert r.shape == (6, 4)
    np.testing.assert_allclose(r, expected, atol=1e-12)


def test_large_offsets_do_not_cost_precision():
    a, b = _data()
    r = _fed(CrossCorrelation, a + 1e5, b - 1e5).correlation()
    np.testing.assert_allclose(r, np.corrcoef(a.T, b.T)[:6, 6:], atol=1e-9)


def test_constant_units_give_nan_not_zero():
    a, b = _data()
    a[:, 2] = 3.0
    b[:, 0] = 0.0
    acc = _fed(CrossCorrelation, a, b)
    r = acc.correlation()
    assert np.isnan(r[2]).all() and np.isnan(r[:, 0]).all()
    live_a, live_b = acc.live()
    assert live_a.tolist() == [True, True, False, True, True, True]
    assert live_b.tolist() == [False, True, True, True]
    assert np.isfinite(np.delete(np.delete(r, 2, 0), 0, 1)).all()


def test_hand_worked_two_by_two():
    # a0 = [1,2,3], a1 = [1,0,1]; b0 = [2,4,6] (r=1 with a0), b1 = [3,2,1] (r=-1 with a0)
    acc = CrossCorrelation(2, 2)
    acc.update(np.array([[1, 1], [2, 0]]), np.array([[2, 3], [4, 2]]))
    acc.update(np.array([[3, 1]]), np.array([[6, 1]]))
    np.testing.assert_allclose(acc.correlation(), [[1, -1], [0, 0]], atol=1e-12)


def test_mismatched_batches_and_empty_state_are_refused():
    acc = CrossCorrelation(2, 3)
    with pytest.raises(ValueError, match="no tokens"):
        acc.correlation()
    with pytest.raises(ValueError, match="tokens"):
        acc.update(np.zeros((4, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"\[tokens, 3\]"):
        acc.update(np.zeros((4, 2)), np.zeros((4, 2)))


def test_cka_matches_the_direct_formula():
    a, b = _data(1)
    cka = _fed(LinearCKA, a, b)
    assert cka.value() == pytest.approx(_direct_cka(a, b), abs=1e-10)
    # the same pass gives r as well
    np.testing.assert_allclose(cka.cross.correlation(), np.corrcoef(a.T, b.T)[:6, 6:], atol=1e-12)


def test_cka_of_a_layer_with_itself_is_one_and_invariant_to_rotation_and_permutation():
    a, _ = _data(2)
    assert _fed(LinearCKA, a, a).value() == pytest.approx(1.0, abs=1e-12)
    q, _r = np.linalg.qr(np.random.default_rng(3).normal(size=(6, 6)))
    assert _fed(LinearCKA, a, a @ q).value() == pytest.approx(1.0, abs=1e-10)
    assert _fed(LinearCKA, a, a[:, ::-1] * 5 + 2).value() == pytest.approx(1.0, abs=1e-10)


def test_cka_of_independent_data_is_small():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(4000, 5)), rng.normal(size=(4000, 5))
    assert _fed(LinearCKA, x, y, batch=500).value() < 0.02


def test_cka_of_constant_data_is_nan():
    x = np.ones((10, 3))
    assert np.isnan(_fed(LinearCKA, x, np.random.default_rng(0).normal(size=(10, 2))).value())


def test_float32_batches_reach_float64_totals_through_buffers(monkeypatch):
    import torch

    from neuroscribe.compare import stats

    monkeypatch.setattr(stats, "FLUSH_TOKENS", 100)  # several flushes in 500 tokens
    a, b = _data(5)
    a32, b32 = torch.from_numpy(a).float(), torch.from_numpy(b).float()
    acc = _fed(CrossCorrelation, a32, b32)
    expected = np.corrcoef(a32.double().numpy().T, b32.double().numpy().T)[:6, 6:]
    np.testing.assert_allclose(acc.correlation(), expected, atol=1e-5)
    # a bitwise copy: squares are the Gram's diagonal, computed as the cross-products are
    cka = _fed(LinearCKA, a32, a32.clone())
    np.testing.assert_allclose(np.diag(cka.cross.correlation()), 1.0, atol=1e-12)
    assert cka.value() == pytest.approx(1.0, abs=1e-12)
    assert cka.cross.n == 500

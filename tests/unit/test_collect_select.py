"""Streaming selection against brute force on random tensors (no model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroscribe.collect.select import RandomSample, RunningStats, TopWindows, quantiles


def stream(acts: torch.Tensor, batch: int):
    for start in range(0, acts.shape[0], batch):
        yield acts[start : start + batch], torch.arange(start, min(start + batch, acts.shape[0]))


@pytest.mark.parametrize("batch", [1, 3, 50])
def test_top_windows_match_brute_force(batch: int) -> None:
    torch.manual_seed(0)
    acts = torch.randn(50, 6, 4)  # [window, pos, unit]
    top = TopWindows(k=7, n_units=4, window_tokens=6)
    for a, idx in stream(acts, batch):
        top.update(a, idx)
    best = acts.amax(dim=1)  # [window, unit]
    for u in range(4):
        expected = torch.argsort(best[:, u], descending=True)[:7]
        assert top.index[u].tolist() == expected.tolist()
        assert torch.equal(top.score[u], best[expected, u])
        assert torch.equal(top.acts[u], acts[expected, :, u])


def test_top_windows_ties_go_to_the_earlier_window() -> None:
    acts = torch.zeros(10, 2, 1)
    acts[[2, 5, 7], 0, 0] = 1.0
    for batch in (1, 4, 10):
        top = TopWindows(k=5, n_units=1, window_tokens=2)
        for a, idx in stream(acts, batch):
            top.update(a, idx)
        assert top.index[0].tolist() == [2, 5, 7, 0, 1]


def test_top_windows_with_fewer_windows_than_k() -> None:
    top = TopWindows(k=10, n_units=2, window_tokens=3)
    top.update(torch.randn(4, 3, 2), torch.arange(4))
    assert top.index.shape == (2, 4)


def test_random_sample_is_uniform_without_replacement_and_seeded() -> None:
    rows = torch.arange(100.0).unsqueeze(1)
    counts = np.zeros(100)
    for seed in range(300):
        sample = RandomSample(capacity=10, seed=seed, row_shape=(1,))
        for a, idx in stream(rows, 7):
            sample.update(a, idx)
        picked = sample.index.tolist()
        assert len(set(picked)) == 10
        assert torch.equal(sample.rows[:, 0], sample.index.float())
        counts[picked] += 1
    # Each row is picked with probability 0.1: 30 of 300 expected, sd about 5.2.
    assert counts.min() > 10 and counts.max() < 55
    a, b = RandomSample(10, 1, (1,)), RandomSample(10, 1, (1,))
    for s in (a, b):
        for x, idx in stream(rows, 7):
            s.update(x, idx)
    assert a.index.tolist() == b.index.tolist()


def test_random_sample_keeps_everything_when_small() -> None:
    sample = RandomSample(capacity=20, seed=0, row_shape=(3, 2))
    for a, idx in stream(torch.randn(12, 3, 2), 5):
        sample.update(a, idx)
    assert sorted(sample.index.tolist()) == list(range(12))


def test_quantiles_leave_the_token_sample_as_it_was() -> None:
    """The partial sort works on a copy, also where the transposed sample needs none (one
    unit, or one row)."""
    for sample in (torch.tensor([[3.0], [1.0], [2.0], [5.0]]), torch.tensor([[4.0, -1.0, 2.0]])):
        before = sample.clone()
        got = quantiles(sample, [0.5, 0.9])
        assert torch.equal(sample, before)
        expected = np.quantile(before.numpy(), [0.5, 0.9], axis=0)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


def test_running_stats_and_quantiles_match_numpy() -> None:
    torch.manual_seed(1)
    acts = torch.randn(30, 5, 3)
    acts[:, :, 2] = -1.0  # a unit that never fires
    stats = RunningStats(n_units=3, firing_threshold=0.5)
    for a, _ in stream(acts, 4):
        stats.update(a)
    flat = acts.reshape(-1, 3).numpy()
    assert stats.n_tokens == 150
    assert torch.equal(stats.max, torch.from_numpy(flat.max(axis=0)))
    np.testing.assert_allclose(stats.mean.numpy(), flat.astype(np.float64).mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(stats.firing_rate.numpy(), (flat > 0.5).mean(axis=0))
    qs = [0.0, 0.5, 0.9, 0.999, 1.0]
    np.testing.assert_allclose(
        quantiles(torch.from_numpy(flat), qs).numpy(), np.quantile(flat, qs, axis=0), rtol=1e-6
    )


@pytest.mark.parametrize("batches", [[1] * 40, [3, 1, 7, 2, 16, 11], [40]])
def test_top_windows_with_many_ties_and_signed_zeros(batches: list[int]) -> None:
    """Ties everywhere (a few distinct values, 0.0 and -0.0 among them, negative values and
    -inf): the kept windows are the k largest, ties to the earlier window, whatever the batches."""
    g = torch.Generator().manual_seed(3)
    values = torch.tensor([-float("inf"), -2.0, -0.5, -0.0, 0.0, 0.25, 1.0, 3.0])
    acts = values[torch.randint(len(values), (40, 3, 6), generator=g)]
    top = TopWindows(k=9, n_units=6, window_tokens=3)
    start = 0
    for n in batches:
        top.update(acts[start : start + n], torch.arange(start, start + n))
        start += n
    best = acts.amax(dim=1)  # [window, unit]
    for u in range(6):
        expected = sorted(range(40), key=lambda w: (-best[w, u].item(), w))[:9]
        assert top.index[u].tolist() == expected
        assert torch.equal(top.acts[u], acts[expected, :, u])


def test_top_windows_resume_from_state_dict() -> None:
    """A state saved mid-stream and loaded into a fresh selection continues identically."""
    g = torch.Generator().manual_seed(4)
    acts = torch.randn(60, 4, 5, generator=g).round(decimals=1)
    whole = TopWindows(k=6, n_units=5, window_tokens=4)
    first = TopWindows(k=6, n_units=5, window_tokens=4)
    for a, idx in stream(acts, 7):
        whole.update(a, idx)
    for a, idx in stream(acts[:28], 7):
        first.update(a, idx)
    resumed = TopWindows(k=6, n_units=5, window_tokens=4)
    resumed.load_state_dict(first.state_dict())
    for a, idx in stream(acts[28:], 7):
        resumed.update(a, idx + 28)
    assert torch.equal(resumed.index, whole.index)
    assert torch.equal(resumed.acts, whole.acts)

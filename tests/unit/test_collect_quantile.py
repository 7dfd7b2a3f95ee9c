"""Quantile-bin window samples against a plain-Python reading of the documented rule."""

from __future__ import annotations

import pytest
import torch

from neuroscribe.collect.quantile import QuantileSample


def reference(acts: torch.Tensor, keys: list[float], bins: int, slots: int, threshold: float):
    """Per unit, per bin: {corpus index: key} kept, one window at a time, as documented."""
    n_windows, _, n_units = acts.shape
    best = acts.amax(dim=1)  # [window, unit]
    result = []
    for u in range(n_units):
        running = float("-inf")
        kept: list[dict[int, tuple[float, float]]] = [{} for _ in range(bins)]  # i -> (key, x)
        for i in range(n_windows):
            x = float(best[i, u])
            running = max(running, x)
            for j in range(bins):  # bins move up with the max
                for w, (_, xw) in list(kept[j].items()):
                    if xw < j / bins * running:
                        del kept[j][w]
            if not (x > max(threshold, 0.0) and x < running):
                continue
            j = min(int(x / running * bins), bins - 1)
            if len(kept[j]) < slots:
                kept[j][i] = (keys[i], x)
            else:
                worst = max(kept[j], key=lambda w: kept[j][w][0])
                if keys[i] < kept[j][worst][0]:
                    del kept[j][worst]
                    kept[j][i] = (keys[i], x)
        result.append([{w: k for w, (k, _) in b.items()} for b in kept])
    return result


def run(acts: torch.Tensor, batch: int, bins: int, slots: int, threshold: float = 0.0):
    sample = QuantileSample(acts.shape[2], bins, slots, acts.shape[1], 5, threshold)
    for start in range(0, acts.shape[0], batch):
        a = acts[start : start + batch]
        sample.update(a.amax(dim=1).t().contiguous(), a, torch.arange(start, start + len(a)))
    return sample


@pytest.mark.parametrize("batch", [1, 4, 37])
def test_bins_keys_and_evictions_match_the_rule(batch: int) -> None:
    torch.manual_seed(1)
    # Activations that grow along the corpus, so the max rises again and again and bins move.
    acts = torch.randn(120, 5, 6) * torch.linspace(0.2, 3.0, 120).view(-1, 1, 1)
    keys = torch.rand(120, generator=torch.Generator().manual_seed(5)).tolist()
    sample = run(acts, batch, bins=3, slots=4, threshold=0.1)
    expected = reference(acts, keys, bins=3, slots=4, threshold=0.1)
    slot, index = sample.chosen(4)
    best = acts.amax(dim=1)
    final_max = best.amax(dim=0)
    assert torch.equal(sample.max, final_max)
    for u in range(6):
        for j in range(3):
            want = sorted(expected[u][j], key=lambda w: expected[u][j][w])
            got = [i for i in index[u, j].tolist() if i >= 0]
            assert got == want, (u, j)
            for i in got:  # every kept window lies in its bin under the final max
                assert j / 3 <= float(best[i, u] / final_max[u]) < (j + 1) / 3
            n = len(got)
            u_, j_ = torch.full((n,), u), torch.full((n,), j)
            assert torch.equal(sample.acts_at(u_, j_, slot[u, j, :n]), acts[got, :, u])


def test_silent_units_and_the_max_window_are_in_no_bin() -> None:
    acts = torch.zeros(10, 3, 2)
    acts[:, 0, 1] = torch.tensor([1.0, 0.2, 0.5, 0.9, 0.3, 0.7, 0.1, 0.6, 0.4, 0.8])
    sample = run(acts, 3, bins=2, slots=10)
    _, index = sample.chosen(10)
    assert (index[0] == -1).all()  # never above 0: no window in any bin
    kept = {i for i in index[1].reshape(-1).tolist() if i >= 0}
    assert kept == set(range(1, 10))  # window 0 is the max: in no bin
    assert sorted(index[1, 1][index[1, 1] >= 0].tolist()) == [2, 3, 5, 7, 9]  # x >= 0.5


def test_state_round_trip_continues_identically() -> None:
    torch.manual_seed(2)
    acts = torch.randn(60, 4, 5) * torch.linspace(0.5, 2.0, 60).view(-1, 1, 1)
    whole = run(acts, 6, bins=4, slots=2)
    first = run(acts[:30], 6, bins=4, slots=2)
    resumed = QuantileSample(5, 4, 2, 4, 0, 0.0)
    resumed.load_state_dict(first.state_dict())
    for start in range(30, 60, 6):
        a = acts[start : start + 6]
        resumed.update(a.amax(dim=1).t().contiguous(), a, torch.arange(start, start + 6))
    assert torch.equal(resumed.chosen(2)[1], whole.chosen(2)[1])

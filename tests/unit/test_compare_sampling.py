"""Which token positions the compare statistics read (``compare.max_stat_tokens``)."""

from __future__ import annotations

import torch

from neuroscribe.compare.stream import position_stride, sampled_positions
from neuroscribe.config import RunConfig


def _cfg(max_windows: int, stat_tokens: int) -> RunConfig:
    return RunConfig.model_validate(
        {
            "collect": {"window_tokens": 32, "max_windows": max_windows},
            "compare": {"max_stat_tokens": stat_tokens},
        }
    )


def _never() -> int:
    raise AssertionError("the corpus need not be counted")


def test_the_stride_grows_with_the_corpus_past_the_cap():
    assert position_stride(_cfg(6250, 25_000), lambda: 6250) == 8  # 200k tokens
    assert position_stride(_cfg(62_500, 25_000), lambda: 62_500) == 80  # 2M tokens
    # a corpus shorter than max_windows: the stride follows the windows it holds
    assert position_stride(_cfg(62_500, 25_000), lambda: 1000) == 1
    assert position_stride(_cfg(62_500, 25_000), lambda: 2500) == 3
    assert position_stride(_cfg(100, 25_000), _never) == 1  # under the cap: every position
    assert position_stride(_cfg(6250, 0), _never) == 1  # no cap


def test_every_position_is_read_alike_and_the_offset_turns():
    mask = sampled_positions(first=5, n_windows=24, width=32, stride=8)
    assert mask is not None and mask.shape == (24, 32)
    assert (mask.sum(1) == 4).all()  # 32 / 8 positions per window
    assert (mask.sum(0) == 3).all()  # over 24 windows, each position 24 / 8 times
    first = mask.float().argmax(1)
    assert first[0] == 3  # window 5: (3 + 5) % 8 == 0
    assert len(set(first.tolist())) == 8
    # batches continue where the last one stopped
    whole = sampled_positions(0, 32, 32, 8)
    assert whole is not None
    assert torch.equal(
        torch.cat([sampled_positions(0, 16, 32, 8), sampled_positions(16, 16, 32, 8)]), whole
    )
    assert sampled_positions(0, 4, 32, 1) is None

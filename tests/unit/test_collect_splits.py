"""Dealing windows into held-out splits, and the disjointness check (no model)."""

from __future__ import annotations

from collections import Counter

from neuroscribe.collect import check_disjoint
from neuroscribe.collect.splits import Candidate, RoundRobin, assign_unit, top_quotas
from neuroscribe.config import CollectConfig
from neuroscribe.records import Split, UnitExamples, UnitId, UnitStats, UnitWindow

E, V, C, T = Split.EXPLAIN, Split.VALIDATE, Split.CALIBRATE, Split.SCORE_TOP


def cand(name: str, tokens: tuple[int, ...] | None = None) -> Candidate:
    return Candidate(name, tokens if tokens is not None else tuple(name.encode()), (1.0, 2.0))


def deal_all(quotas: list[tuple[Split, int]], n: int) -> list[Split | None]:
    rr = RoundRobin(quotas)
    return [rr.next() for _ in range(n)]


def test_round_robin_interleaves_ranks_and_passes_over_full_splits() -> None:
    got = deal_all([(E, 6), (V, 3), (C, 3), (T, 5)], 18)
    assert got[:12] == [E, V, C, T] * 3
    assert got[12:17] == [E, T, E, T, E]  # validate and calibrate are full
    assert got[17] is None
    assert Counter(got[:17]) == {E: 6, V: 3, C: 3, T: 5}


def test_round_robin_skips_zero_quota() -> None:
    assert deal_all([(E, 2), (V, 0), (C, 1), (T, 1)], 4) == [E, C, T, E]


def test_assign_unit_sizes_ranks_and_disjoint() -> None:
    cfg = CollectConfig(n_explain=3, n_validate=2, n_calibrate=1, n_score_top=2, n_random=2)
    top = [(r, cand(f"t{r}")) for r in range(12)]
    # The random sample overlaps the top windows: those must not be used twice.
    random = [cand("t1"), cand("t9"), *(cand(f"r{i}") for i in range(10))]
    ood = [cand(f"o{i}") for i in range(5)]
    windows = assign_unit(top, random, ood, cfg)
    sizes = Counter(w.split for w in windows)
    assert sizes == {E: 3, V: 2 + 2, C: 1 + 2, T: 2, Split.SCORE_RANDOM: 2, Split.SCORE_OOD: 2}
    assert [w.rank for w in windows if w.rank >= 0] == list(range(8))
    assert all(w.rank == -1 for w in windows if w.window_id.startswith(("r", "o")))
    ids = [w.window_id for w in windows]
    assert len(ids) == len(set(ids))
    # t9 was not among the 8 top windows placed, so it may serve as a random window.
    assert {w.window_id for w in windows if w.rank == -1 and w.window_id.startswith("t")} == {"t9"}


def test_assign_unit_passes_over_repeated_text() -> None:
    cfg = CollectConfig(n_explain=1, n_validate=0, n_calibrate=0, n_score_top=1, n_random=1)
    top = [(0, cand("a", (1, 2))), (1, cand("b", (1, 2))), (2, cand("c", (3, 4)))]
    random = [cand("d", (3, 4)), cand("e", (5, 6)), cand("f", (7, 8)), cand("g", (9, 9))]
    windows = assign_unit(top, random, [], cfg)
    assert [(w.window_id, w.split, w.rank) for w in windows] == [
        ("a", E, 0),
        ("c", T, 2),
        ("e", V, -1),
        ("f", C, -1),
        ("g", Split.SCORE_RANDOM, -1),
    ]


def test_assign_unit_with_a_small_corpus_fills_what_it_can() -> None:
    cfg = CollectConfig()
    windows = assign_unit([(0, cand("a")), (1, cand("b"))], [cand("a"), cand("c")], [], cfg)
    assert [(w.window_id, w.split) for w in windows] == [("a", E), ("b", V), ("c", V)]


def test_top_quotas_follow_config() -> None:
    cfg = CollectConfig(n_explain=4, n_validate=0, n_calibrate=1, n_score_top=2)
    assert top_quotas(cfg) == [(E, 4), (V, 0), (C, 1), (T, 2)]


def _unit(windows: list[tuple[str, Split]]) -> UnitExamples:
    stats = UnitStats(n_tokens=1, max=1.0, mean=0.0, firing_rate=0.1, quantiles=(), dead=False)
    return UnitExamples(
        unit=UnitId(subject_id="m@0", site="layers.0.mlp", index=3),
        stats=stats,
        windows=tuple(
            UnitWindow(window_id=w, split=s, rank=0, activations=(0.0,)) for w, s in windows
        ),
    )


def test_check_disjoint_reports_a_window_in_two_splits() -> None:
    ok = _unit([("a", E), ("b", T)])
    bad = _unit([("a", E), ("b", T), ("a", T), ("b", T)])
    assert check_disjoint([ok]) == []
    problems = check_disjoint([ok, bad])
    assert len(problems) == 2
    assert "window a is in splits explain and score_top" in problems[0]
    assert "m@0/layers.0.mlp/3" in problems[0]
    assert "window b is in split score_top twice" in problems[1]


def dealt_names(dealt, u: int) -> list[tuple[str, Split]]:
    """Unit ``u``'s placed windows as (``t``/``q<bin>``/``r``/``o`` + position, split)."""
    from neuroscribe.collect.assemble import QUANTILE, SPLITS

    column = dealt.taken[u].nonzero()[:, 0]
    kinds, positions = dealt.kind(column).tolist(), dealt.position(column).tolist()
    bin_ = ((column - dealt.n_top) // max(dealt.n_slots, 1)).tolist()
    names = ["t", "q", "r", "o"]
    return [
        (f"{names[k]}{bin_[i] if k == QUANTILE else ''}{positions[i]}", SPLITS[s])
        for i, (k, s) in enumerate(zip(kinds, dealt.split[u, column].tolist(), strict=True))
    ]


def test_dealing_on_content_ids_equals_assign_unit() -> None:
    """The batched final step deals on integers (``assemble.deal``); for one unit it must
    choose exactly what ``assign_unit`` chooses, repeats, overlaps and short lists included."""
    import random

    import torch

    from neuroscribe.collect.assemble import deal

    rng = random.Random(0)
    for trial in range(300):
        cfg = CollectConfig(
            n_explain=rng.randint(1, 4),
            n_validate=rng.randint(0, 3),
            n_calibrate=rng.randint(0, 2),
            n_score_top=rng.randint(1, 3),
            n_random=rng.randint(1, 3),
            n_quantile=rng.randint(0, 3),
            quantile_bins=rng.randint(1, 3),
        )
        pool = rng.randint(3, 40)  # few distinct contents: many repeats and overlaps

        def draw(n: int, pool: int = pool) -> list[int]:
            return [rng.randrange(pool) for _ in range(n)]

        top, random_, ood = draw(rng.randint(0, 25)), draw(rng.randint(0, 30)), draw(6)
        bins = [draw(rng.randint(0, 6)) for _ in range(cfg.quantile_bins)]
        lists = {"t": top, "r": random_, "o": ood, **{f"q{b}": x for b, x in enumerate(bins)}}

        def cands(kind: str, lists: dict[str, list[int]] = lists) -> list[Candidate]:
            # the window id names the list and position; the tokens carry the content
            return [Candidate(f"{kind}{i}", (c,), (float(c),)) for i, c in enumerate(lists[kind])]

        expected = assign_unit(
            list(enumerate(cands("t"))),
            cands("r"),
            cands("o"),
            cfg,
            [cands(f"q{b}") for b in range(cfg.quantile_bins)],
        )
        slots = max(len(x) for x in bins)
        bin_rows = torch.full((1, len(bins), slots), -1, dtype=torch.long)
        for b, keys in enumerate(bins):
            bin_rows[0, b, : len(keys)] = torch.tensor(keys, dtype=torch.long)

        def row(keys: list[int]) -> torch.Tensor:
            return torch.tensor(keys, dtype=torch.long)

        dealt = deal(cfg, row(top).reshape(1, -1), bin_rows, row(random_), row(ood))
        assert dealt_names(dealt, 0) == [(w.window_id, w.split) for w in expected], trial


def test_dealing_many_units_at_once_equals_dealing_each() -> None:
    """``assemble.deal`` over a batch of units (shared random and OOD rows, -1 where a unit
    has fewer candidates, dead units) places what ``assign_unit`` places unit by unit."""
    import random

    import torch

    from neuroscribe.collect.assemble import deal

    rng = random.Random(1)
    cfg = CollectConfig(
        n_explain=3,
        n_validate=2,
        n_calibrate=1,
        n_score_top=2,
        n_random=2,
        n_quantile=2,
        quantile_bins=3,
    )
    n_units, pool = 50, 12
    top = torch.tensor([[rng.randrange(pool) for _ in range(9)] for _ in range(n_units)])
    top[::7, 6:] = -1  # units with fewer top windows
    bins = torch.tensor(
        [[[rng.randrange(-1, pool) for _ in range(4)] for _ in range(3)] for _ in range(n_units)]
    )
    shared = torch.tensor([rng.randrange(pool) for _ in range(14)])
    ood = torch.tensor([rng.randrange(pool) for _ in range(5)])
    alive = torch.tensor([u % 5 != 0 for u in range(n_units)])
    dealt = deal(cfg, top, bins, shared, ood, alive)
    lists = (
        ("t", top.tolist()),
        ("q0", bins[:, 0].tolist()),
        ("q1", bins[:, 1].tolist()),
        ("q2", bins[:, 2].tolist()),
    )
    for u in range(n_units):

        def cands(kind: str, ids: list[int]) -> list[Candidate]:
            return [Candidate(f"{kind}{i}", (c,), (0.0,)) for i, c in enumerate(ids) if c >= 0]

        per_unit = {kind: rows[u] for kind, rows in lists}
        expected = assign_unit(
            list(enumerate(cands("t", per_unit["t"]))),
            cands("r", shared.tolist()),
            cands("o", ood.tolist()),
            cfg,
            [cands(f"q{b}", per_unit[f"q{b}"]) for b in range(3)],
        )
        expected_names = [(w.window_id, w.split) for w in expected] if alive[u] else []
        assert dealt_names(dealt, u) == expected_names, u


def test_activation_lists_split_into_chunks_whose_offsets_fit_32_bits():
    """A catalogue's placed windows can hold more than 2**31 activations: the Arrow lists are
    cut into chunks of rows, with the same rows whatever the cut."""
    import pyarrow as pa
    import torch

    from neuroscribe.collect.assemble import _lists

    rows = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    whole, cut = _lists(rows), _lists(rows, max_values=5)
    assert (whole.num_chunks, cut.num_chunks) == (1, 4)
    assert cut.type == pa.list_(pa.float32())
    assert whole.to_pylist() == cut.to_pylist() == rows.tolist()

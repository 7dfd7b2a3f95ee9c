"""What a Dask chunk costs the flow's process: its inputs are sealed (``flows.sealed``), so
Prefect does not walk them, Dask does not hash them, and they are unpickled only where they are
used; chunks are sized to the cluster (``flows.cluster``)."""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

from flows.cluster import CHUNKS_PER_WORKER, chunk_sizes, chunks, warm_workers
from flows.sealed import Sealed
from neuroscribe.config import EngineConfig

UNPICKLED: list[int] = []


class Counted:
    """A value that records each time it is unpickled."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __reduce__(self):
        return _counted, (self.n,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Counted) and other.n == self.n


def _counted(n: int) -> Counted:
    UNPICKLED.append(n)
    return Counted(n)


def test_a_sealed_value_is_unpickled_only_when_read():
    UNPICKLED.clear()
    value = {"units": [Counted(i) for i in range(5)], "first": 7}
    arrived = pickle.loads(pickle.dumps(Sealed(value)))
    assert not arrived.loaded and UNPICKLED == []
    again = pickle.loads(pickle.dumps(arrived))  # the scheduler's round trip: bytes only
    assert UNPICKLED == [] and again.token == arrived.token
    assert again.value == value
    assert UNPICKLED == [0, 1, 2, 3, 4] and again.loaded
    assert again.value is again.value  # once
    assert cloudpickle.loads(cloudpickle.dumps(Sealed(value))).value == value


def test_prefect_does_not_walk_a_sealed_value():
    from prefect.utilities.collections import visit_collection

    units = [[float(i)] * 32 for i in range(200)]
    seen: list[object] = []
    visit_collection({"sealed": Sealed(units)}, visit_fn=seen.append, return_data=False)
    assert len(seen) == 3  # the dict, its key, the sealed value
    seen.clear()
    visit_collection({"plain": units}, visit_fn=seen.append, return_data=False)
    assert len(seen) > 200 * 32  # what sealing saves: every element


def test_dask_names_a_sealed_value_without_pickling_it():
    from dask.base import tokenize

    UNPICKLED.clear()
    sealed = Sealed([Counted(1)])
    calls: list[int] = []
    original = Sealed.__reduce__

    def counting(self):
        calls.append(1)
        return original(self)

    try:
        Sealed.__reduce__ = counting  # type: ignore[method-assign]
        assert tokenize(sealed) == tokenize(sealed)
        assert calls == []
    finally:
        Sealed.__reduce__ = original  # type: ignore[method-assign]
    assert tokenize(sealed) != tokenize(Sealed([Counted(1)]))  # each submission is new work


@pytest.mark.parametrize(
    ("units", "workers", "want"),
    [
        (4096, 2, [1024, 768, 576, 432, 324, 256, 256, 256, 204]),
        (4096, 1, [2048, 1024, 512, 512]),
        (10, 2, [3, 2, 2, 1, 1, 1]),
        (3, 2, [1, 1, 1]),
        (1, 8, [1]),
        (0, 2, []),
    ],
)
def test_chunks_shrink_to_the_cluster(units, workers, want):
    sizes = chunk_sizes(EngineConfig(kind="dask"), units, workers)
    assert sizes == want
    parts = chunks(list(range(units)), sizes)
    assert len(parts) <= 2 * CHUNKS_PER_WORKER * workers + 1
    assert [x for _, part in parts for x in part] == list(range(units))
    assert [first for first, _ in parts] == [sum(sizes[:i]) for i in range(len(sizes))]
    assert sizes == sorted(sizes, reverse=True)


def test_a_set_chunk_size_is_kept():
    assert chunk_sizes(EngineConfig(kind="dask", chunk_units=3), 10, 2) == [3, 3, 3, 1]
    assert [len(p) for _, p in chunks(list(range(10)), 3)] == [3, 3, 3, 1]


def test_warm_up_runs_once_on_every_worker():
    from distributed import Client, LocalCluster, get_worker

    assert warm_workers(None, print) == []
    with (
        LocalCluster(
            n_workers=3, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        futures = warm_workers(client, lambda: get_worker().address)
        ran = [f.result() for f in futures]
        assert sorted(ran) == sorted(client.scheduler_info()["workers"])
        assert len(set(ran)) == 3


def test_collection_shards_deal_the_units_in_turn():
    from flows.shards import shard_configs
    from neuroscribe.config import load_config

    cfg = load_config(None, {"collect.units": [3, 5, 7, 9, 11]})
    assert [s.collect.units for s in shard_configs(cfg, 2)] == [[3, 7, 11], [5, 9]]
    assert [s.collect.units for s in shard_configs(cfg, 9)] == [[3], [5], [7], [9], [11]]
    assert shard_configs(cfg, 1)[0].collect == cfg.collect
    assert all(s.collect.site == cfg.collect.site for s in shard_configs(cfg, 2))


def test_a_whole_catalogue_is_dealt_by_index_and_odd_sites_go_alone(monkeypatch):
    from flows import shards
    from neuroscribe.config import load_config
    from neuroscribe.records import UnitId

    widths = {"layers.0.mlp": 4, "layers.1.mlp": 4, "layers.2.mlp": 2}
    planned = [
        UnitId(subject_id="s", site=site, index=i) for site, n in widths.items() for i in range(n)
    ]
    monkeypatch.setattr(shards, "planned_units", lambda cfg: planned)
    cfg = load_config(None, {"collect.units": "all", "collect.site": ["layers.*.mlp"]})
    got = [(s.collect.site, s.collect.units) for s in shards.shard_configs(cfg, 2)]
    assert got == [
        (["layers.0.mlp", "layers.1.mlp"], [0, 2]),
        (["layers.0.mlp", "layers.1.mlp"], [1, 3]),
        (["layers.2.mlp"], "all"),
    ]


def _explanations(keys: list[str]) -> list:
    """Two explainers' explanations of ``keys`` in the single-process order (explainer by
    explainer); some units have no usable one of the first, one has none at all."""
    from neuroscribe.records import Explanation

    out = []
    for explainer in ("a/first", "b/second"):
        for i, key in enumerate(keys):
            failed = explainer == "a/first" and i % 3 == 1
            if i == 4:
                continue  # no explanation of this unit: it is no one's donor
            out.append(
                Explanation(
                    explanation_id=f"{explainer}:{key}",
                    unit_key=key,
                    explainer=explainer,
                    status="failed" if failed else "ok",
                    text=None if failed else f"t{i}",
                    failure="empty" if failed else None,
                )
            )
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 5, 11, 12, [4, 3, 2, 1, 1]])
def test_chunks_and_their_boundaries_make_the_controls_of_one_process(size):
    from flows.chunk_work import boundary_controls, chunk_controls, donors
    from neuroscribe.explain.units import shuffled_controls

    keys = [f"unit/{i}" for i in range(11)]
    everything = _explanations(keys)
    want = shuffled_controls(everything, keys)
    parts = [part for _, part in chunks(keys, size)]
    made = {}
    for i, part in enumerate(parts):
        mine = [e for e in everything if e.unit_key in part]
        made[i] = chunk_controls(mine, part, whole=len(parts) == 1)
    edges = boundary_controls(
        parts, {i: donors(everything, part[0]) for i, part in enumerate(parts)}
    )
    got = [c for i in range(len(parts)) for c in [*made[i], *edges.get(i, [])]]
    assert got == want and len(want) == 10
    assert (len(parts) > 1) == bool(edges)

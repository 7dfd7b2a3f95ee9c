"""The collect stage on tiny random-weight models of five architectures, checked by brute force."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from collect_fixtures import (  # noqa: E402
    ARCHITECTURES,
    INTERMEDIATE,
    MLP_MODULE,
    build_cfg,
    build_tiny_model,
    random_documents,
    write_jsonl,
    write_txt,
)

from neuroscribe.collect import CollectError, CollectResult, check_disjoint, collect  # noqa: E402
from neuroscribe.collect.sites import capture, resolve_site  # noqa: E402
from neuroscribe.models import load_model  # noqa: E402
from neuroscribe.records import Split, Window  # noqa: E402

DEAD = 2  # the unit whose input weights are zeroed in the "dead" models


@pytest.fixture(scope="module", autouse=True)
def _quiet_single_thread(tmp_path_factory: pytest.TempPathFactory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROSCRIBE_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {arch: build_tiny_model(arch, root / arch, dead_unit=DEAD) for arch in ARCHITECTURES}


@pytest.fixture(scope="module")
def docs() -> list[str]:
    return random_documents(30, seed=3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, docs: list[str]) -> Path:
    return write_txt(tmp_path_factory.mktemp("corpus") / "c.txt", docs)


def brute_force(model_dir: Path, arch: str, docs: list[str], cfg: Any, corpus_id: str):
    """Every window's full MLP activations, computed without the collect code: tokenize and cut
    by hand, frame with [CLS]/[SEP] (the BERT tokenizer's defaults), run the whole model with a
    hand-placed hook. Same batches as collect, so fp32 values must agree exactly."""
    loaded = load_model(str(model_dir))
    model, tok = loaded.model, loaded.tokenizer
    w = cfg.collect.window_tokens
    ids, meta = [], []
    for i, text in enumerate(docs):
        toks = tok(text, add_special_tokens=False)["input_ids"]
        for start in range(0, len(toks) - w + 1, w):
            ids.append([tok.cls_token_id, *toks[start : start + w], tok.sep_token_id])
            meta.append(
                Window.make_id(corpus_id, f"c.txt#{i}", start, tuple(toks[start : start + w]))
            )
    ids, meta = ids[: cfg.collect.max_windows], meta[: cfg.collect.max_windows]
    path, kind = MLP_MODULE[arch]
    module = model.get_submodule(path.format(i=int(cfg.collect.site.split(".")[1])))
    out: list[torch.Tensor] = []
    if kind == "pre":
        handle = module.register_forward_pre_hook(lambda _m, a: out.append(a[0].float()))
    else:
        handle = module.register_forward_hook(lambda _m, _a, o: out.append(o.float()))
    with torch.inference_mode():
        for b in range(0, len(ids), cfg.collect.batch_size):
            x = torch.tensor(ids[b : b + cfg.collect.batch_size])
            model(input_ids=x, attention_mask=torch.ones_like(x))
    handle.remove()
    acts = torch.cat(out)[:, 1 : 1 + w, :]  # [window, pos, all units]
    return meta, acts


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_sites_resolve_to_the_mlp_activation(arch: str, models: dict[str, Path]) -> None:
    model = load_model(str(models[arch])).model
    site = resolve_site(model, "layers.1.mlp", [0, 63])
    assert site.width == INTERMEDIATE
    x = torch.randint(1000, 2000, (2, 5))
    for name, width in (("layers.1.mlp", INTERMEDIATE), ("layers.0.resid", 32)):
        s = resolve_site(model, name, list(range(width)))
        with torch.inference_mode(), capture(s, list(range(width))) as got:
            try:
                model.base_model(input_ids=x)
            except Exception as e:  # StopForward
                assert type(e).__name__ == "StopForward"
        assert got[0].shape == (2, 5, width) and got[0].dtype == torch.float32


def test_unknown_site_or_unit_lists_the_valid_ones(models: dict[str, Path], corpus: Path) -> None:
    for site, units in (("layers.2.mlp", 4), ("layers.0.mlp", [64]), ("layers.1.resid", [32])):
        with pytest.raises(CollectError) as err:
            collect(build_cfg(models["llama"], corpus, site=site, units=units))
        assert (
            "valid sites: layers.0.mlp … layers.1.mlp, layers.0.resid … layers.1.resid; "
            "units 0..63 for mlp, 0..31 for resid"
        ) in str(err.value)
    with pytest.raises(CollectError, match="not a canonical site name"):
        collect(build_cfg(models["llama"], corpus, site="blocks.1.mlp"))
    with pytest.raises(CollectError, match="non-negative"):
        collect(build_cfg(models["llama"], corpus, units=[1, -1]))


def test_huge_unit_counts_and_lists_fail_in_one_short_line(
    models: dict[str, Path], corpus: Path
) -> None:
    """A count is checked against the width before its indices are listed (no MemoryError for
    10**9, no OverflowError for 10**20), and a long list of bad indices is shortened."""
    for count in (10**5, 10**9, 10**20):
        with pytest.raises(CollectError) as err:
            collect(build_cfg(models["llama"], corpus, units=count))
        assert f"collect.units = {count} asks for units 0..{count - 1}" in str(err.value)
        assert "has 64 (units 0..63)" in str(err.value)
    with pytest.raises(CollectError) as err:
        collect(build_cfg(models["llama"], corpus, units=list(range(60, 5000))))
    assert "[64, 65, 66, 67, 68, 69, 70, 71, 72, 73, ... and 4926 more]" in str(err.value)
    assert len(str(err.value)) < 400
    with pytest.raises(CollectError, match=r"listed more than once: \[3\]"):
        collect(build_cfg(models["llama"], corpus, units=[3, 1, 3]))


@pytest.mark.parametrize("arch", ["gpt2", "llama", "bert"])
def test_top_windows_and_stats_match_brute_force(
    arch: str, models: dict[str, Path], corpus: Path, docs: list[str]
) -> None:
    cfg = build_cfg(
        models[arch], corpus, units=[0, 5, DEAD, 17, 63], max_windows=50, quantiles=[0.1, 0.5, 0.9]
    )
    result = collect(cfg)
    ids, acts = brute_force(models[arch], arch, docs, cfg, result.corpus_id)
    assert result.n_windows == len(ids) == 50
    by_id = {w.window_id: w for w in result.windows}
    assert set(by_id) <= set(ids)
    assert check_disjoint(result.units) == []
    n_top = (
        cfg.collect.n_explain
        + cfg.collect.n_validate
        + cfg.collect.n_calibrate
        + cfg.collect.n_score_top
    )
    for unit in result.units:
        u = unit.unit.index
        a = acts[:, :, u]
        flat = a.reshape(-1).numpy()
        assert unit.stats.n_tokens == flat.size
        assert unit.stats.max == float(flat.max())
        assert unit.stats.firing_rate == pytest.approx(float((flat > 0).mean()), abs=0)
        # Sums are float32 per batch: error relative to the size of the values, not the mean.
        scale = float(np.abs(flat).astype(np.float64).mean())
        assert unit.stats.mean == pytest.approx(flat.astype(np.float64).mean(), abs=1e-6 * scale)
        np.testing.assert_allclose(
            unit.stats.quantiles, np.quantile(flat, [0.1, 0.5, 0.9]), rtol=1e-6
        )
        if u == DEAD:
            assert unit.stats.dead and unit.windows == ()
            continue
        assert not unit.stats.dead
        order = torch.argsort(a.amax(dim=1), descending=True, stable=True)[:n_top].tolist()
        top = sorted((w for w in unit.windows if w.rank >= 0), key=lambda w: w.rank)
        assert [w.rank for w in top] == list(range(n_top))
        assert [w.window_id for w in top] == [ids[i] for i in order]
        for w in unit.windows:  # every window's activations, top or random, are exact
            assert w.activations == tuple(a[ids.index(w.window_id)].tolist())
        sizes = Counter(w.split for w in unit.windows)
        assert sizes == {
            Split.EXPLAIN: 3,
            Split.VALIDATE: 4,
            Split.CALIBRATE: 4,
            Split.SCORE_TOP: 2,
            Split.SCORE_RANDOM: 2,
        }
        assert [w.split for w in top[:4]] == [
            Split.EXPLAIN,
            Split.VALIDATE,
            Split.CALIBRATE,
            Split.SCORE_TOP,
        ]


@pytest.mark.parametrize("arch", ["gpt_neox", "gemma"])
def test_dead_unit_and_windows_on_other_architectures(
    arch: str, models: dict[str, Path], corpus: Path
) -> None:
    result = collect(build_cfg(models[arch], corpus, units=[DEAD, 7]))
    dead, alive = result.units
    assert dead.stats.dead and dead.stats.max <= 0 and dead.windows == ()
    assert not alive.stats.dead and len(alive.windows) == 9 + 6
    assert result.subject.architecture == arch and result.subject.n_layers == 2


def test_result_windows_are_the_used_ones_and_decoded(
    models: dict[str, Path], corpus: Path
) -> None:
    result = collect(build_cfg(models["gpt2"], corpus, site="layers.0.resid", units=[0, 1, 31]))
    used = {w.window_id for u in result.units for w in u.windows}
    assert {w.window_id for w in result.windows} == used
    for w in result.windows:
        assert len(w.token_ids) == len(w.tokens) == 8
        assert w.window_id == Window.make_id(w.corpus_id, w.doc_id, w.start, w.token_ids)
        assert w.doc_id.startswith("c.txt#") and w.start % 8 == 0
    assert "document" in {t for w in result.windows for t in w.tokens}
    assert result.units[0].unit.site == "layers.0.resid"
    assert result.units[0].unit.subject_id == result.subject.subject_id
    assert CollectResult.model_validate_json(result.model_dump_json()) == result


def test_collect_is_deterministic_and_reports_progress(
    models: dict[str, Path], corpus: Path
) -> None:
    cfg = build_cfg(models["llama"], corpus, max_windows=40, batch_size=16)
    calls: list[tuple[int, int]] = []
    first = collect(cfg, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(16, 40), (32, 40), (40, 40)]
    assert collect(cfg) == first
    other = collect(build_cfg(models["llama"], corpus, max_windows=40, batch_size=16, seed=1))

    def randoms(result: CollectResult) -> list[set[str]]:
        return [{w.window_id for w in u.windows if w.rank < 0} for u in result.units]

    assert randoms(other) != randoms(first)  # the seed picks the random windows


def test_ood_corpus_fills_the_ood_split(
    models: dict[str, Path], corpus: Path, tmp_path: Path
) -> None:
    ood = write_jsonl(tmp_path / "ood.jsonl", random_documents(10, seed=9, words=(30, 40)))
    cfg = build_cfg(models["bert"], corpus, units=[0, 1], corpus_ood_source=str(ood))
    result = collect(cfg)
    assert check_disjoint(result.units) == []
    for unit in result.units:
        ood_windows = unit.in_splits(Split.SCORE_OOD)
        assert len(ood_windows) == cfg.collect.n_random
        corpus_ids = {
            w.corpus_id for w in result.windows if w.window_id in {x.window_id for x in ood_windows}
        }
        assert len(corpus_ids) == 1 and corpus_ids != {result.corpus_id}


def test_bad_corpora_and_window_sizes(models: dict[str, Path], tmp_path: Path) -> None:
    short = write_txt(tmp_path / "short.txt", ["too short", "also short"])
    with pytest.raises(CollectError, match="yielded no window of 8 tokens"):
        collect(build_cfg(models["gpt2"], short))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(CollectError, match="yielded no window"):
        collect(build_cfg(models["gpt2"], empty))
    ok = write_txt(tmp_path / "ok.txt", random_documents(5))
    with pytest.raises(CollectError, match="out-of-distribution corpus .* yielded no window"):
        collect(build_cfg(models["gpt2"], ok, corpus_ood_source=str(short)))
    with pytest.raises(CollectError, match="does not exist"):
        collect(build_cfg(models["gpt2"], tmp_path / "missing.jsonl"))
    long = write_txt(tmp_path / "long.txt", random_documents(3, words=(200, 200)))
    with pytest.raises(CollectError, match="window_tokens=127 is too large.*128 positions"):
        collect(build_cfg(models["bert"], long, window_tokens=127))
    with pytest.raises(CollectError, match="does not exist"):
        collect(build_cfg(tmp_path / "no-model", long))


def test_skipped_documents_are_counted(models: dict[str, Path], tmp_path: Path) -> None:
    write_txt(tmp_path / "a.txt", random_documents(4, words=(20, 30)))
    (tmp_path / "b.txt").write_bytes(b"bad \xff\xfe bytes")
    result = collect(build_cfg(models["gpt2"], tmp_path, units=1))
    assert (result.n_documents, result.skipped_documents) == (4, 1)


def test_quantile_windows_lie_in_their_bins_and_join_the_explain_split(
    models: dict[str, Path], corpus: Path, docs: list[str], tmp_path: Path
) -> None:
    from contextlib import closing

    from neuroscribe.explain.base import explain_windows
    from neuroscribe.warehouse import connect
    from neuroscribe.warehouse.collection import save_collection

    units = [0, 5, 17, 63]
    cfg = build_cfg(
        models["gpt2"], corpus, units=units, max_windows=60, n_quantile=2, quantile_bins=3
    )
    result = collect(cfg)
    plain = collect(build_cfg(models["gpt2"], corpus, units=units, max_windows=60))
    ids, acts = brute_force(models["gpt2"], "gpt2", docs, cfg, result.corpus_id)
    assert check_disjoint(result.units) == []
    by_id = {w.window_id: w for w in result.windows}
    n_quantile = 0
    for unit, before in zip(result.units, plain.units, strict=True):
        a = acts[:, :, unit.unit.index]
        top = [w for w in unit.windows if w.rank >= 0]
        assert top == [w for w in before.windows if w.rank >= 0]  # top windows unchanged
        quantile = [w for w in unit.windows if w.rank <= -2]
        assert all(w.split == Split.EXPLAIN for w in quantile)
        assert Counter(w.rank for w in quantile).keys() <= {-2, -3, -4}
        assert max(Counter(w.rank for w in quantile).values(), default=0) <= 2
        for w in quantile:
            assert w.activations == tuple(a[ids.index(w.window_id)].tolist())
            j = 2 - (-w.rank - 2)  # rank -2 is the highest bin (j = 2 of 0..2)
            x = max(w.activations)
            assert x > 0 and j / 3 <= x / unit.stats.max < (j + 1) / 3
        n_quantile += len(quantile)
        shown = [uw.rank for uw, _ in explain_windows(unit, by_id)]
        assert shown == sorted(r for r in shown if r >= 0) + sorted(
            (r for r in shown if r <= -2), reverse=True
        )
    assert n_quantile >= 8  # random weights fire at many levels: the bins are not empty
    with closing(connect(tmp_path / "w.duckdb")) as con:
        save_collection(
            con, "r1", result.subject, result.corpus_id, result.windows, result.units
        )
        assert con.execute("SELECT count(*) FROM split_overlaps").fetchone()[0] == 0
        got = con.execute(
            "SELECT count(*) FROM unit_windows WHERE split = 'explain' AND top_rank <= -2"
        ).fetchone()[0]
        assert got == n_quantile

"""SAE features, several sites in one pass, and resumed collections, on tiny random models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from collect_fixtures import (  # noqa: E402
    build_cfg,
    build_tiny_model,
    random_documents,
    write_jsonl,
    write_sae,
    write_txt,
)

from neuroscribe.collect import CollectError, check_disjoint, collect  # noqa: E402
from neuroscribe.collect.sae import load_sae  # noqa: E402
from neuroscribe.models import load_model  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _quiet_single_thread(tmp_path_factory: pytest.TempPathFactory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEUROSCRIBE_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model("llama", tmp_path_factory.mktemp("models") / "llama")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_txt(tmp_path_factory.mktemp("corpus") / "c.txt", random_documents(30, seed=3))


def resid_acts(model_dir: Path, cfg) -> torch.Tensor:
    """Every window's residual stream after block 1 (the output of the last block), by hand."""
    loaded = load_model(str(model_dir))
    model, tok = loaded.model, loaded.tokenizer
    w = cfg.collect.window_tokens
    ids = []
    for text in random_documents(30, seed=3):
        toks = tok(text, add_special_tokens=False)["input_ids"]
        ids += [toks[s : s + w] for s in range(0, len(toks) - w + 1, w)]
    ids = ids[: cfg.collect.max_windows]
    out: list[torch.Tensor] = []
    block = model.model.layers[1]
    handle = block.register_forward_hook(
        lambda _m, _a, o: out.append(o[0] if isinstance(o, tuple) else o)
    )
    with torch.inference_mode():
        for b in range(0, len(ids), cfg.collect.batch_size):
            x = torch.tensor(
                [
                    [tok.cls_token_id, *r, tok.sep_token_id]
                    for r in ids[b : b + cfg.collect.batch_size]
                ]
            )
            model.model(input_ids=x, attention_mask=torch.ones_like(x))
    handle.remove()
    return torch.cat(out)[:, 1 : 1 + w].float()


@pytest.mark.parametrize("arch", ["standard", "jumprelu", "topk"])
def test_sae_features_are_the_units(arch: str, llama: Path, corpus: Path, tmp_path: Path) -> None:
    folder = write_sae(tmp_path / f"sae-{arch}", architecture=arch)
    cfg = build_cfg(llama, corpus, sae=str(folder), units=[0, 7, 47], max_windows=40)
    result = collect(cfg)
    sae = load_sae(folder)
    feats = sae.encode(resid_acts(llama, cfg))  # [window, pos, feature]
    assert check_disjoint(result.units) == []
    for unit in result.units:
        assert unit.unit.sae_id == sae.sae_id and unit.unit.site == "layers.1.resid"
        assert sae.sae_id in unit.unit.key
        f = feats[..., unit.unit.index]
        assert unit.stats.max == pytest.approx(float(f.max()), rel=1e-5, abs=1e-6)
        assert unit.stats.firing_rate == pytest.approx(float((f > 0).float().mean()), abs=1e-9)


def test_sae_mismatches_fail_before_the_forward_pass(
    llama: Path, corpus: Path, tmp_path: Path
) -> None:
    wide = write_sae(tmp_path / "wide", d_in=48)
    with pytest.raises(CollectError, match="reads 48-wide activations but site 'layers.1.resid'"):
        collect(build_cfg(llama, corpus, sae=str(wide)))
    deep = write_sae(tmp_path / "deep", hook_name="blocks.5.hook_resid_post")
    with pytest.raises(CollectError, match="reads 'layers.5.resid' but the model has 2 layers"):
        collect(build_cfg(llama, corpus, sae=str(deep)))
    ok = write_sae(tmp_path / "ok")
    with pytest.raises(CollectError, match="does not match the SAE's hook"):
        collect(build_cfg(llama, corpus, sae=str(ok), site="layers.0.resid"))
    with pytest.raises(CollectError, match=r"unit indices \[48\] are out of range for SAE"):
        collect(build_cfg(llama, corpus, sae=str(ok), units=[48]))
    with pytest.raises(CollectError, match="SAE folder .* does not exist"):
        collect(build_cfg(llama, corpus, sae=str(tmp_path / "missing")))


def test_several_sites_in_one_pass_equal_one_site_at_a_time(llama: Path, corpus: Path) -> None:
    both = collect(build_cfg(llama, corpus, site="layers.*.mlp", units=[0, 5, 63]))
    assert [(u.unit.site, u.unit.index) for u in both.units] == [
        (f"layers.{layer}.mlp", i) for layer in (0, 1) for i in (0, 5, 63)
    ]
    listed = collect(
        build_cfg(llama, corpus, site=["layers.1.mlp", "layers.0.mlp"], units=[0, 5, 63])
    )
    assert listed == both  # sites are ordered by depth whatever order they are listed in
    for layer in (0, 1):
        one = collect(build_cfg(llama, corpus, site=f"layers.{layer}.mlp", units=[0, 5, 63]))
        for a, b in zip(both.units[3 * layer : 3 * layer + 3], one.units, strict=True):
            assert a.unit == b.unit and a.windows == b.windows
            # float32 batch sums may add in another order when other units sit beside them
            assert a.stats.mean == pytest.approx(b.stats.mean, rel=1e-6)
            assert a.stats.model_copy(update={"mean": 0.0}) == b.stats.model_copy(
                update={"mean": 0.0}
            )
    mixed = collect(build_cfg(llama, corpus, site="layers.0.mlp_out, layers.1.resid", units=2))
    assert [u.unit.site for u in mixed.units] == ["layers.0.mlp_out"] * 2 + ["layers.1.resid"] * 2
    with pytest.raises(CollectError, match="more than once"):
        collect(build_cfg(llama, corpus, site="layers.*.mlp,layers.1.mlp"))
    with pytest.raises(CollectError, match="not a canonical site name"):
        collect(build_cfg(llama, corpus, site="layers.*.attn"))


class Interrupt(Exception):
    pass


def interrupt_after(n: int):
    calls = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == n:
            raise Interrupt

    return progress


@pytest.mark.parametrize("stop_after", [1, 5, 11])
def test_resume_equals_an_uninterrupted_run(
    stop_after: int, llama: Path, corpus: Path, tmp_path: Path
) -> None:
    ood = write_jsonl(tmp_path / "ood.jsonl", random_documents(10, seed=9, words=(30, 40)))
    cfg = build_cfg(
        llama,
        corpus,
        site="layers.*.mlp",
        units=[0, 5, 63],
        max_windows=60,
        corpus_ood_source=str(ood),
    )
    full = collect(cfg, checkpoint_dir=tmp_path / "a")
    assert not list((tmp_path / "a").glob("*.pt"))  # removed once complete
    ckpts = tmp_path / "b"
    with pytest.raises(Interrupt):  # 60 windows / 7 = 9 main batches, then the OOD corpus
        collect(
            cfg,
            progress=interrupt_after(stop_after),
            checkpoint_every=2,
            checkpoint_seconds=0,
            checkpoint_dir=ckpts,
        )
    if stop_after >= 2:
        assert len(list(ckpts.glob("*.pt"))) == 1
    seen: list[int] = []
    resumed = collect(
        cfg,
        progress=lambda done, _: seen.append(done),
        resume=True,
        checkpoint_every=2,
        checkpoint_seconds=0,
        checkpoint_dir=ckpts,
    )
    assert resumed == full
    assert not list(ckpts.glob("*.pt"))
    if stop_after == 5:
        assert seen[0] == 5 * 7  # the 4 checkpointed batches were skipped, not recomputed
    other = build_cfg(llama, corpus, site="layers.*.mlp", units=[0, 5], max_windows=60)
    assert collect(other, resume=True, checkpoint_dir=ckpts) == collect(other)  # no checkpoint


def test_checkpoints_wait_for_their_interval_in_seconds(
    llama: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = build_cfg(llama, corpus, site="layers.*.mlp", units=[0, 5], max_windows=60)
    with pytest.raises(Interrupt):  # 2 batches apart, but an hour has not passed
        collect(
            cfg,
            progress=interrupt_after(5),
            checkpoint_every=2,
            checkpoint_seconds=3600,
            checkpoint_dir=tmp_path / "hour",
        )
    assert not list((tmp_path / "hour").glob("*.pt"))
    monkeypatch.setenv("NEUROSCRIBE_CHECKPOINT_SECONDS", "0")
    with pytest.raises(Interrupt):
        collect(cfg, progress=interrupt_after(5), checkpoint_every=2, checkpoint_dir=tmp_path / "0")
    assert len(list((tmp_path / "0").glob("*.pt"))) == 1
    monkeypatch.setenv("NEUROSCRIBE_CHECKPOINT_SECONDS", "soon")
    with pytest.raises(CollectError, match="NEUROSCRIBE_CHECKPOINT_SECONDS must be a number"):
        collect(cfg, checkpoint_dir=tmp_path / "bad")


def test_resume_with_quantile_windows_equals_an_uninterrupted_run(
    llama: Path, corpus: Path, tmp_path: Path
) -> None:
    cfg = build_cfg(
        llama,
        corpus,
        site="layers.*.mlp",
        units=[0, 5, 63],
        max_windows=60,
        n_quantile=2,
        quantile_bins=3,
    )
    full = collect(cfg, checkpoint_dir=tmp_path / "a")
    assert any(w.rank <= -2 for u in full.units for w in u.windows)
    with pytest.raises(Interrupt):
        collect(
            cfg,
            progress=interrupt_after(5),
            checkpoint_every=2,
            checkpoint_seconds=0,
            checkpoint_dir=tmp_path,
        )
    assert (
        collect(cfg, resume=True, checkpoint_every=2, checkpoint_seconds=0, checkpoint_dir=tmp_path)
        == full
    )


def test_a_corpus_rewritten_in_place_is_not_resumed_from_the_old_checkpoint(
    llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.txt"
    old, new = random_documents(30, seed=3), random_documents(30, seed=4)
    cfg = build_cfg(llama, path, max_windows=60)
    write_txt(path, new)
    expected = collect(cfg, checkpoint_dir=tmp_path / "fresh")

    def interrupted_on_old(ckpts: Path) -> None:
        write_txt(path, old)
        with pytest.raises(Interrupt):
            collect(
                cfg,
                progress=interrupt_after(5),
                checkpoint_every=2,
                checkpoint_seconds=0,
                checkpoint_dir=ckpts,
            )
        assert len(list(ckpts.glob("*.pt"))) == 1
        write_txt(path, new)  # same path and config, other content

    # The file's content hash is part of the checkpoint's name: the old one is not found.
    interrupted_on_old(tmp_path / "b")
    assert collect(cfg, resume=True, checkpoint_dir=tmp_path / "b") == expected
    assert len(list((tmp_path / "b").glob("*.pt"))) == 1  # the old one, untouched

    # A source whose id does not change with its content (as a dataset name): the windows
    # re-read no longer match the checkpoint's hash of them, and the corpus is read afresh.
    monkeypatch.setattr("neuroscribe.collect.corpus.file_hash", lambda _path: "same")
    expected = collect(cfg, checkpoint_dir=tmp_path / "fresh")  # window ids hold the corpus id
    interrupted_on_old(tmp_path / "c")
    seen: list[int] = []
    resumed = collect(
        cfg, progress=lambda done, _: seen.append(done), resume=True, checkpoint_dir=tmp_path / "c"
    )
    assert seen[0] == 7  # started over: the first batch was run, not skipped
    assert resumed == expected
    assert not list((tmp_path / "c").glob("*.pt"))


def test_a_bad_checkpoint_interval_stops_the_command_before_anything_is_written(
    corpus: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from neuroscribe.cli import app

    warehouse = tmp_path / "w.duckdb"
    r = CliRunner().invoke(
        app,
        ["--warehouse", str(warehouse), "collect", "--corpus", str(corpus), "--units", "2"],
        env={"NEUROSCRIBE_CHECKPOINT_SECONDS": "soon", "COLUMNS": "200"},
    )
    assert r.exit_code == 2, r.output
    assert "NEUROSCRIBE_CHECKPOINT_SECONDS must be a number of seconds" in r.stderr
    assert not warehouse.exists()

"""Catalogue mode, ``collect.units = "all"``: every unit of each site (its width from the model),
or every feature of an SAE, on a tiny random-weight model; the same records per unit as naming
the unit; found again in the warehouse without listing indices; bad words are one message."""

from __future__ import annotations

import sys
from contextlib import closing
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from collect_fixtures import (  # noqa: E402
    HIDDEN,
    INTERMEDIATE,
    N_LAYERS,
    build_cfg,
    build_tiny_model,
    random_documents,
    write_txt,
)

from neuroscribe.cli.options import parse_value  # noqa: E402
from neuroscribe.collect import collect  # noqa: E402
from neuroscribe.collect.forward import plan_units  # noqa: E402
from neuroscribe.config import CollectConfig, ConfigError, load_config  # noqa: E402
from neuroscribe.models import load_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("catalogue")
    torch.set_num_threads(1)
    model = build_tiny_model("gpt2", root / "model")
    corpus = write_txt(root / "c.txt", random_documents(30, seed=4))
    return model, corpus


def test_all_units_take_each_sites_width(tiny: tuple[Path, Path]) -> None:
    model, corpus = tiny
    loaded = load_model(str(model))
    cfg = build_cfg(model, corpus, site="layers.*.mlp,layers.0.resid", units="all")
    plan = plan_units(cfg, loaded.model)
    widths = {f"layers.{i}.mlp": INTERMEDIATE for i in range(N_LAYERS)} | {
        "layers.0.resid": HIDDEN
    }
    assert len(plan.columns) == sum(widths.values())
    for site, width in widths.items():
        assert [u for s, u in plan.columns if s == site] == list(range(width))
    with pytest.raises(ValueError, match="indices come from the model"):
        _ = cfg.unit_indices


def test_catalogue_records_equal_those_of_named_units(
    tiny: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neuroscribe.warehouse import collection, connect

    monkeypatch.setenv("NEUROSCRIBE_CACHE", str(tmp_path / "cache"))
    model, corpus = tiny
    every = collect(build_cfg(model, corpus, site="layers.*.mlp", units="all"))
    assert len(every.units) == N_LAYERS * INTERMEDIATE
    named = collect(build_cfg(model, corpus, site="layers.*.mlp", units=[5, 63]))
    by_key = {u.unit.key: u for u in every.units}
    for unit in named.units:  # the same windows, splits and activations as when named
        assert by_key[unit.unit.key] == unit
    with closing(connect(tmp_path / "w.duckdb")) as con:
        collection.save_collection(
            con, "r1", every.subject, every.corpus_id, every.windows, every.units
        )
        keys = collection.find_unit_keys(
            con, every.subject.subject_id, ["layers.*.mlp"], None
        )
        assert sorted(keys) == sorted(by_key)
        assert len(collection.find_unit_keys(
            con, every.subject.subject_id, ["layers.*.mlp"], [5]
        )) == N_LAYERS


def test_units_word_on_the_command_line_and_in_a_file() -> None:
    from typing import get_type_hints

    annotation = get_type_hints(CollectConfig)["units"]
    assert parse_value(annotation, "all") == "all"
    assert parse_value(annotation, "3,17") == ["3", "17"]
    assert load_config(None, {"collect.units": "all"}).every_unit
    assert load_config(None, {"collect.units": parse_value(annotation, "3,17")}).unit_indices == [
        3, 17,
    ]
    with pytest.raises(ConfigError) as err:
        load_config(None, {"collect.units": "every"})
    assert str(err.value) == (
        "collect.units: Value error, must be a count, a list of indices or 'all'; got 'every'"
    )

"""Collection as a run does it: the config's units, which of them the warehouse already holds
as this config would collect them, and one forward pass for the rest.

The caller (a flow) reads what is stored and writes what comes back; nothing here opens the
warehouse.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

from pydantic import ValidationError

from neuroscribe.collect.collect import CollectResult, collect
from neuroscribe.collect.corpus import open_corpus
from neuroscribe.collect.forward import plan_units
from neuroscribe.collect.sae import load_sae
from neuroscribe.collect.sites import spec_items
from neuroscribe.config import RunConfig
from neuroscribe.faults import kill_point
from neuroscribe.models import load_model, resolve_source, weights_hash
from neuroscribe.progress import task
from neuroscribe.records import Subject, UnitId

StoredCollections = Mapping[str, tuple[str | None, str, Sequence[str]]]
"""Per unit key: the config JSON of the run that collected it, its corpus id, and the corpus ids
of its windows (what the warehouse's ``unit_collections`` returns)."""


def collect_missing(
    cfg: RunConfig, stored: Callable[[list[str]], StoredCollections]
) -> tuple[list[str], CollectResult | None]:
    """The collect stage: the config's unit keys, and a collection of those that ``stored``
    (asked with the keys) does not hold as this config would collect them, or None when it holds
    them all (no forward pass)."""
    keys, todo = missing_config(cfg, stored)
    return keys, None if todo is None else collect_units(todo)


def missing_config(
    cfg: RunConfig, stored: Callable[[list[str]], StoredCollections]
) -> tuple[list[str], RunConfig | None]:
    """The config's unit keys, and the config that collects those ``stored`` does not hold as
    this config would collect them (None when it holds them all)."""
    planned = planned_units(cfg)
    keys = [u.key for u in planned]
    todo = uncollected(cfg, planned, stored(keys))
    if not todo:
        return keys, None
    # With units = "all" the sites' widths may differ, so one list of indices cannot name the
    # missing units of each: the whole catalogue is collected again (one pass either way).
    return keys, cfg if cfg.every_unit else with_units(cfg, todo)


def planned_units(cfg: RunConfig) -> list[UnitId]:
    """The config's units, named as collection names them, in collection order. Loads the model
    (cached per process: the input checks have loaded it already) but runs nothing through it."""
    loaded = load_model(cfg.subject.model, cfg.subject.gguf_file, cfg.subject.dtype)
    sae = load_sae(cfg.collect.sae) if cfg.collect.sae else None
    subject = Subject.make_id(cfg.subject.model, loaded.weights_hash)
    return [
        UnitId(subject_id=subject, site=site, index=index, sae_id=sae.sae_id if sae else None)
        for site, index in plan_units(cfg, loaded.model, sae).columns
    ]


def uncollected(cfg: RunConfig, units: Sequence[UnitId], stored: StoredCollections) -> list[UnitId]:
    """The units that the warehouse does not hold as this config would collect them. A stored
    unit counts when the run that collected it had the same subject, corpus and collect settings
    except the list of units (the weights hash is in the unit's key), and its windows come from
    the corpora as they read now (a file corpus's id holds a hash of its bytes). Everything else
    is collected again."""
    c = cfg.corpus
    corpus_id = open_corpus(c.source, c.text_field, c.max_documents).corpus_id
    corpora = {corpus_id}
    if c.ood_source:
        corpora.add(open_corpus(c.ood_source, c.text_field, c.max_documents).corpus_id)
    wanted = _collection_settings(cfg)
    settings: dict[str, dict[str, object] | None] = {}  # one reading per distinct run config
    out = []
    for unit in units:
        config_json, unit_corpus, window_corpora = stored.get(unit.key, (None, "", ()))
        if config_json is not None and config_json not in settings:
            settings[config_json] = _stored_settings(config_json)
        same = (
            config_json is not None
            and unit_corpus == corpus_id
            and set(window_corpora) <= corpora
            and settings[config_json] == wanted
        )
        if not same:
            out.append(unit)
    return out


def with_units(cfg: RunConfig, units: Sequence[UnitId]) -> RunConfig:
    """The config restricted to these units' indices (the config itself when that is all)."""
    indices = sorted({u.index for u in units})
    if indices == sorted(cfg.unit_indices):
        return cfg
    return cfg.model_copy(update={"collect": cfg.collect.model_copy(update={"units": indices})})


def collect_units(cfg: RunConfig) -> CollectResult:
    """Collection with a progress bar. A collection of the same config and weights that was
    interrupted (its checkpoint is still there) continues where it stopped."""
    with task("collect", cfg.collect.max_windows) as advance:
        done = 0

        def report(n: int, total: int) -> None:
            nonlocal done
            advance(n - done)
            done = n
            kill_point("collect:batch")

        return collect(cfg, progress=report, resume=True)


def unit_selector(cfg: RunConfig) -> tuple[str, list[str], str | None]:
    """How to find the config's units in the warehouse without loading the model: the subject
    id, the site patterns (``layers.*.mlp``), and the SAE id."""
    if cfg.collect.sae:
        sae = load_sae(cfg.collect.sae)
        return subject_id(cfg), [str(sae.site)], sae.sae_id
    return subject_id(cfg), spec_items(cfg.collect.site), None


def subject_id(cfg: RunConfig) -> str:
    """The subject's id (name and weights hash) without loading the model."""
    source = resolve_source(cfg.subject.model, cfg.subject.gguf_file)
    return Subject.make_id(cfg.subject.model, weights_hash(source))


def _collection_settings(cfg: RunConfig) -> dict[str, object]:
    return {
        "subject": cfg.subject.model_dump(mode="json"),
        "corpus": cfg.corpus.model_dump(mode="json"),
        "collect": cfg.collect.model_dump(mode="json", exclude={"units"}),
    }


def _stored_settings(config_json: str) -> dict[str, object] | None:
    """A stored run config's collection settings; None when it no longer reads as a config."""
    try:
        return _collection_settings(RunConfig.model_validate(json.loads(config_json)))
    except (ValueError, ValidationError):
        return None

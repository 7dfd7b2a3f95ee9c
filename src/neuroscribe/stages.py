"""What the flows call around the stages: preflight checks, collection, unit bookkeeping.

The annotator stages over many units now live with their stage (``explain.explain_units``,
``simulate.simulate_units`` and ``fuzz_units``, ``score.score_units``, ``agree.agree_units``);
the functions of the same job here only call them, until the flows call them directly. Nothing
here touches the warehouse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from neuroscribe import agree, explain, score, simulate
from neuroscribe.collect import CollectResult, collect
from neuroscribe.config import RunConfig
from neuroscribe.llm.base import Ledger
from neuroscribe.progress import task
from neuroscribe.records import (
    Agreement,
    Explanation,
    Score,
    Simulation,
    UnitExamples,
    UnitId,
    Window,
)
from neuroscribe.simulate import SIMULATED_SPLITS
from neuroscribe.warehouse.db import kill_point

__all__ = ["SIMULATED_SPLITS"]


def explain_units(
    units: Sequence[UnitExamples], windows: Mapping[str, Window], cfg: RunConfig, ledger: Ledger
) -> list[Explanation]:
    """``neuroscribe.explain.explain_units`` (kept while the flows move to it)."""
    return explain.explain_units(units, windows, cfg, ledger)


def shuffled_controls(
    explanations: Sequence[Explanation], unit_keys: Sequence[str]
) -> list[Explanation]:
    """``neuroscribe.explain.shuffled_controls``."""
    return explain.shuffled_controls(explanations, unit_keys)


def simulate_explanations(
    explanations: Sequence[Explanation],
    units: Sequence[UnitExamples],
    windows: Mapping[str, Window],
    cfg: RunConfig,
    ledger: Ledger,
    done: frozenset[tuple[str, str]] = frozenset(),
) -> list[Simulation]:
    """``neuroscribe.simulate.simulate_units``."""
    return simulate.simulate_units(explanations, units, windows, cfg, ledger, done)


def fuzz_explanations(
    explanations: Sequence[Explanation],
    units: Sequence[UnitExamples],
    windows: Mapping[str, Window],
    cfg: RunConfig,
    ledger: Ledger,
    done: frozenset[tuple[str, str]] = frozenset(),
) -> list[Score]:
    """``neuroscribe.simulate.fuzz_units``."""
    return simulate.fuzz_units(explanations, units, windows, cfg, ledger, done)


def score_all(
    explanations: Sequence[Explanation],
    units: Sequence[UnitExamples],
    simulations: Sequence[Simulation],
    cfg: RunConfig,
) -> list[Score]:
    """``neuroscribe.score.score_units``."""
    return score.score_units(explanations, units, simulations, cfg)


def agree_all(
    explanations: Sequence[Explanation],
    simulations: Sequence[Simulation],
    scores: Sequence[Score],
) -> list[Agreement]:
    """``neuroscribe.agree.agree_units``."""
    return agree.agree_units(explanations, simulations, scores)


def preflight(cfg: RunConfig, annotators: bool = True) -> None:
    """Every check of the user's input, before a run is recorded: the corpus, the model's files,
    every annotator's name, then (loading the model) the site, units and window length. Each
    failure raises an error whose message names the problem."""
    from neuroscribe.collect import validate_inputs
    from neuroscribe.collect.collect import plan_units
    from neuroscribe.collect.sae import load_sae
    from neuroscribe.collect.windows import check_window_size, special_frame
    from neuroscribe.models import load_model, resolve_source

    validate_inputs(cfg)
    resolve_source(cfg.subject.model, cfg.subject.gguf_file)
    if annotators:
        check_annotators(cfg)
    # The model is cached per process, so collection reuses this load.
    loaded = load_model(cfg.subject.model, cfg.subject.gguf_file, cfg.subject.dtype)
    sae = load_sae(cfg.collect.sae) if cfg.collect.sae else None
    plan_units(cfg, loaded.model, sae)
    check_window_size(loaded.model, cfg.collect.window_tokens, special_frame(loaded.tokenizer))
    for label, source in (
        ("corpus", cfg.corpus.source),
        ("out-of-distribution corpus", cfg.corpus.ood_source),
    ):
        if source:
            _check_yields_a_window(label, source, cfg, loaded.tokenizer)


def _check_yields_a_window(label: str, source: str, cfg: RunConfig, tokenizer: object) -> None:
    """Read the corpus only until its first full window: an empty corpus fails here, before a
    run is recorded, instead of after collection started."""
    from neuroscribe.collect import CollectError
    from neuroscribe.collect.corpus import open_corpus
    from neuroscribe.collect.windows import cut_windows

    docs = open_corpus(source, cfg.corpus.text_field, cfg.corpus.max_documents)
    if next(iter(cut_windows(docs, tokenizer, cfg.collect.window_tokens, 1)), None) is None:
        raise CollectError(
            f"{label} '{source}' yields no window of {cfg.collect.window_tokens} tokens "
            f"({docs.n_documents} documents read, {docs.skipped} skipped as non-UTF-8 or "
            "empty); use a larger corpus or a smaller collect.window_tokens"
        )


def check_annotators(cfg: RunConfig, explainers: bool = True) -> None:
    """Names first (no I/O; the explain and simulate factories' own tables), then one cheap
    call per endpoint annotator: an unreachable endpoint, a wrong key or an unknown model fails
    here, not on every unit."""
    from neuroscribe.explain import check_explainer_name
    from neuroscribe.llm.factory import check_backend
    from neuroscribe.simulate import check_simulator_name

    names = [*cfg.explain.explainers] if explainers else []
    for name in names:
        check_explainer_name(name)
    simulators = [*cfg.simulate.simulators, cfg.explain.select_with]
    for name in simulators:
        check_simulator_name(name)
    for name in dict.fromkeys([*names, *simulators]):
        check_backend(name, cfg.annotators.get(name))


def unit_selector(cfg: RunConfig) -> tuple[str, list[str], str | None]:
    """How to find the config's units in the warehouse without loading the model: the subject
    id, SQL LIKE patterns for the sites (``layers.*.mlp`` -> ``layers.%.mlp``), and the SAE id."""
    from neuroscribe.collect.sae import load_sae
    from neuroscribe.collect.sites import spec_items

    if cfg.collect.sae:
        sae = load_sae(cfg.collect.sae)
        return subject_id(cfg), [str(sae.site)], sae.sae_id
    patterns = [item.replace("*", "%") for item in spec_items(cfg.collect.site)]
    return subject_id(cfg), patterns, None


def subject_id(cfg: RunConfig) -> str:
    """The subject's id (name and weights hash) without loading the model."""
    from neuroscribe.models import resolve_source, weights_hash
    from neuroscribe.records import Subject

    source = resolve_source(cfg.subject.model, cfg.subject.gguf_file)
    return Subject.make_id(cfg.subject.model, weights_hash(source))


def collect_units(cfg: RunConfig) -> CollectResult:
    """Collection with a progress bar. A collection of the same config and weights that was
    interrupted (its checkpoint is still there) continues where it stopped."""
    with task("collect", cfg.collect.max_windows) as advance:
        done = 0

        def report(n: int, total: int) -> None:
            nonlocal done
            advance(n - done)
            done = n
            kill_point("collect:batch")  # fault injection for the resume tests; off by default

        return collect(cfg, progress=report, resume=True)


def planned_units(cfg: RunConfig) -> list[UnitId]:
    """The config's units, named as collection names them, in collection order. Loads the model
    (cached per process: preflight has loaded it already) but runs nothing through it."""
    from neuroscribe.collect.collect import plan_units
    from neuroscribe.collect.sae import load_sae
    from neuroscribe.models import load_model
    from neuroscribe.records import Subject

    loaded = load_model(cfg.subject.model, cfg.subject.gguf_file, cfg.subject.dtype)
    sae = load_sae(cfg.collect.sae) if cfg.collect.sae else None
    subject = Subject.make_id(cfg.subject.model, loaded.weights_hash)
    return [
        UnitId(subject_id=subject, site=site, index=index, sae_id=sae.sae_id if sae else None)
        for site, index in plan_units(cfg, loaded.model, sae).columns
    ]


def uncollected(
    cfg: RunConfig,
    units: Sequence[UnitId],
    stored: Mapping[str, tuple[str | None, str, Sequence[str]]],
) -> list[UnitId]:
    """The units that the warehouse does not hold as this config would collect them. A stored
    unit counts (``stored``: ``store.unit_collections``) when the run that collected it had the
    same subject, corpus and collect settings except the list of units (the weights hash is in
    the unit's key), and its windows come from the corpora as they read now (a file corpus's id
    holds a hash of its bytes). Everything else is collected again."""
    from neuroscribe.collect.corpus import open_corpus

    c = cfg.corpus
    corpus_id = open_corpus(c.source, c.text_field, c.max_documents).corpus_id
    corpora = {corpus_id}
    if c.ood_source:
        corpora.add(open_corpus(c.ood_source, c.text_field, c.max_documents).corpus_id)
    wanted = _collection_settings(cfg)
    out = []
    for unit in units:
        config_json, unit_corpus, window_corpora = stored.get(unit.key, (None, "", ()))
        same = (
            config_json is not None
            and unit_corpus == corpus_id
            and set(window_corpora) <= corpora
            and _stored_settings(config_json) == wanted
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


def _collection_settings(cfg: RunConfig) -> dict[str, object]:
    return {
        "subject": cfg.subject.model_dump(mode="json"),
        "corpus": cfg.corpus.model_dump(mode="json"),
        "collect": cfg.collect.model_dump(mode="json", exclude={"units"}),
    }


def _stored_settings(config_json: str) -> dict[str, object] | None:
    """A stored run config's collection settings; None when it no longer reads as a config."""
    import json

    from pydantic import ValidationError

    try:
        return _collection_settings(RunConfig.model_validate(json.loads(config_json)))
    except (ValueError, ValidationError):
        return None

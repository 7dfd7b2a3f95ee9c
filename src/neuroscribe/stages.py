"""The pipeline's stages over many units: plain functions from records to records.

Each function here loops one stage's per-unit function over the units of a run and adds what a
run needs around it (dead units skipped, best-of-n selection, the shuffled control). The Prefect
flows in ``flows/`` call these and store what they return; nothing here touches the warehouse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from neuroscribe.agree import (
    agree_across_units,
    agree_explainers,
    agree_explanation_texts,
    agree_overall,
    agree_unit,
    agree_with_control,
    clarity,
)
from neuroscribe.collect import CollectResult, collect
from neuroscribe.config import RunConfig
from neuroscribe.explain import explain_all, make_explainer, select_best
from neuroscribe.ids import content_hash
from neuroscribe.llm.base import Ledger
from neuroscribe.progress import task, track
from neuroscribe.records import (
    Agreement,
    Explanation,
    Score,
    Simulation,
    Split,
    UnitExamples,
    UnitId,
    Window,
)
from neuroscribe.score import fuzz_scores, score_explanation, validation_score
from neuroscribe.score.controls import SHUFFLED_CONTROL
from neuroscribe.simulate import make_simulator, simulate_all
from neuroscribe.simulate.fuzz import build_fuzz_items, make_fuzz_judge
from neuroscribe.warehouse.db import kill_point

SIMULATED_SPLITS = (Split.CALIBRATE, Split.SCORE_TOP, Split.SCORE_RANDOM, Split.SCORE_OOD)


def explain_units(
    units: Sequence[UnitExamples], windows: Mapping[str, Window], cfg: RunConfig, ledger: Ledger
) -> list[Explanation]:
    """Every explainer on every live unit; several samples are reduced to one by best-of-n on
    the validation split (never the split that is reported)."""
    live = [u for u in units if not u.stats.dead]
    selector = make_simulator(
        cfg.explain.select_with,
        cfg.simulate,
        ledger,
        annotator=cfg.annotators.get(cfg.explain.select_with),
    )
    out: list[Explanation] = []
    for name in cfg.explain.explainers:
        explainer = make_explainer(name, cfg.explain, ledger, annotator=cfg.annotators.get(name))
        seeds = [cfg.collect.seed + i for i in range(len(live))]
        step = max(1, 2 * getattr(explainer, "max_concurrency", 1))
        with task(f"explain  {name}", len(live)) as advance:
            for start in range(0, len(live), step):
                chunk = live[start : start + step]
                results = explain_all(
                    explainer, chunk, windows, cfg.explain.samples, seeds[start : start + step]
                )
                for unit, samples in zip(chunk, results, strict=True):
                    if sum(s.status == "ok" for s in samples) > 1:
                        samples = select_best(samples, unit, windows, selector, validation_score)
                    out.extend(samples)
                advance(len(chunk))
    if cfg.score.controls:
        out.extend(shuffled_controls(out, [u.unit.key for u in live]))
    return out


def shuffled_controls(
    explanations: Sequence[Explanation], unit_keys: Sequence[str]
) -> list[Explanation]:
    """Chance-level control: each unit gets the selected explanation of the next unit (cyclic),
    from the first explainer that explained both. Needs at least two units."""
    if len(unit_keys) < 2:
        return []
    chosen: dict[tuple[str, str], Explanation] = {}
    for e in explanations:
        if e.status == "ok" and e.selected:
            chosen.setdefault((e.unit_key, e.explainer), e)
    explainers = list(dict.fromkeys(e.explainer for e in explanations))
    controls = []
    for i, key in enumerate(unit_keys):
        donor_key = unit_keys[(i + 1) % len(unit_keys)]
        donor = next((chosen[(donor_key, x)] for x in explainers if (donor_key, x) in chosen), None)
        if donor is None:
            continue
        controls.append(
            Explanation(
                explanation_id=content_hash(key, SHUFFLED_CONTROL, donor.explanation_id),
                unit_key=key,
                explainer=SHUFFLED_CONTROL,
                text=donor.text,
                prompt=donor.prompt,
            )
        )
    return controls


def _pending(
    explanations: Sequence[Explanation],
    by_key: Mapping[str, UnitExamples],
    simulators: Sequence[str],
    done: frozenset[tuple[str, str]],
) -> list[tuple[str, list[Explanation]]]:
    """Per simulator, the selected ok explanations of known units it has not yet done (simulators
    with nothing to do are left out)."""
    todo = [e for e in explanations if e.status == "ok" and e.selected and e.unit_key in by_key]
    pending = [
        (name, [e for e in todo if (e.explanation_id, name) not in done]) for name in simulators
    ]
    return [(name, mine) for name, mine in pending if mine]


def simulate_explanations(
    explanations: Sequence[Explanation],
    units: Sequence[UnitExamples],
    windows: Mapping[str, Window],
    cfg: RunConfig,
    ledger: Ledger,
    done: frozenset[tuple[str, str]] = frozenset(),
) -> list[Simulation]:
    """Every simulator on every selected explanation, over the held-out windows of its unit,
    except the (explanation id, simulator) pairs in ``done``."""
    by_key = {u.unit.key: u for u in units}
    out: list[Simulation] = []
    for name, mine in _pending(explanations, by_key, cfg.simulate.simulators, done):
        simulator = make_simulator(name, cfg.simulate, ledger, annotator=cfg.annotators.get(name))
        jobs = [
            (e, [windows[w.window_id] for w in by_key[e.unit_key].in_splits(*SIMULATED_SPLITS)])
            for e in mine
        ]
        step = max(1, 2 * getattr(simulator, "max_concurrency", 1))
        with task(f"simulate {name}", len(jobs)) as advance:
            for start in range(0, len(jobs), step):
                chunk = jobs[start : start + step]
                for sims in simulate_all(simulator, chunk):
                    out.extend(sims)
                advance(len(chunk))
    return out


def fuzz_explanations(
    explanations: Sequence[Explanation],
    units: Sequence[UnitExamples],
    windows: Mapping[str, Window],
    cfg: RunConfig,
    ledger: Ledger,
    done: frozenset[tuple[str, str]] = frozenset(),
) -> list[Score]:
    """Fuzzing (``fuzz_bacc``, ``fuzz_auroc``) of every selected explanation, controls
    included, by every simulator, except the (explanation id, simulator) pairs in ``done``.
    The simulators judge marked held-out windows (``neuroscribe.simulate.fuzz``); nothing when
    ``cfg.score.fuzz`` is off."""
    if not cfg.score.fuzz:
        return []
    by_key = {u.unit.key: u for u in units}
    items = {
        key: build_fuzz_items(unit, cfg.score.fuzz_windows, cfg.collect.seed)
        for key, unit in by_key.items()
    }
    out: list[Score] = []
    for name, mine in _pending(explanations, by_key, cfg.simulate.simulators, done):
        judge = make_fuzz_judge(name, cfg.simulate, ledger, annotator=cfg.annotators.get(name))
        with task(f"fuzz     {name}", len(mine)) as advance:
            for e in mine:
                unit = by_key[e.unit_key]
                verdicts = judge.judge(e, items[e.unit_key], windows)
                no_items = (
                    "unit never fires" if unit.stats.max <= 0
                    else "no held-out window with firing tokens and at least as many silent ones"
                )
                out.extend(
                    fuzz_scores(
                        e.explanation_id, name, verdicts, cfg.score, cfg.collect.seed,
                        unavailable=judge.unavailable, no_items=no_items,
                    )
                )
                advance(1)
    return out


def score_all(
    explanations: Sequence[Explanation],
    units: Sequence[UnitExamples],
    simulations: Sequence[Simulation],
    cfg: RunConfig,
) -> list[Score]:
    by_key = {u.unit.key: u for u in units}
    grouped: dict[tuple[str, str], list[Simulation]] = {}
    for s in simulations:
        grouped.setdefault((s.explanation_id, s.simulator), []).append(s)
    explanation_unit = {e.explanation_id: e.unit_key for e in explanations}
    out: list[Score] = []
    for (eid, simulator), sims in track(sorted(grouped.items()), "score"):
        unit = by_key[explanation_unit[eid]]
        out.extend(score_explanation(eid, simulator, unit, sims, cfg.score, seed=cfg.collect.seed))
    return out


def agree_all(
    explanations: Sequence[Explanation],
    simulations: Sequence[Simulation],
    scores: Sequence[Score],
) -> list[Agreement]:
    """Agreement between simulators (per explanation), between explainers (per unit), across
    units, and each unit's clarity figure. No new LLM calls: only stored predictions."""
    sims_by_expl: dict[str, dict[str, list[Simulation]]] = {}
    for s in simulations:
        sims_by_expl.setdefault(s.explanation_id, {}).setdefault(s.simulator, []).append(s)
    real = [
        e
        for e in explanations
        if e.status == "ok" and e.selected and e.explainer != SHUFFLED_CONTROL
    ]
    controls = {
        e.unit_key: e
        for e in explanations
        if e.status == "ok" and e.selected and e.explainer == SHUFFLED_CONTROL
    }
    out: list[Agreement] = []
    units = sorted({e.unit_key for e in real})
    for key in units:
        mine = [e for e in real if e.unit_key == key]
        # Simulators agree over the same (explanation, window, token) items of this unit.
        by_sim: dict[str, list[Simulation]] = {}
        for e in mine:
            for simulator, sims in sims_by_expl.get(e.explanation_id, {}).items():
                by_sim.setdefault(simulator, []).extend(sims)
        window_ids = sorted({s.window_id for sims in by_sim.values() for s in sims})
        unit_stats = list(agree_unit(key, by_sim, window_ids))
        # Explainers agree when their explanations make the simulators predict alike.
        per_explainer = {
            e.explainer: [
                s for sims in sims_by_expl.get(e.explanation_id, {}).values() for s in sims
            ]
            for e in mine
        }
        unit_stats.extend(agree_explainers(key, per_explainer))
        # ... beyond what each simulator shows between an explanation and the shuffled control.
        control = controls.get(key)
        control_sims = [
            s
            for sims in sims_by_expl.get(control.explanation_id if control else "", {}).values()
            for s in sims
        ]
        unit_stats.extend(agree_with_control(key, per_explainer, control_sims))
        unit_stats.extend(agree_explanation_texts(key, {e.explainer: e.text for e in mine}))
        value = clarity(unit_stats)
        out.extend(unit_stats)
        out.append(
            Agreement(
                unit_key=key,
                kind="clarity",
                annotators=(),
                value=value,
                reason=None if value is not None else "no agreement statistic available",
                n=len(unit_stats),
            )
        )
    out.extend(agree_across_units(scores, real))
    out.extend(agree_overall(real, simulations))
    return out


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
    from neuroscribe.llm.registry import check_backend
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

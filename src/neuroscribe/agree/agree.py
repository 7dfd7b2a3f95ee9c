"""Agreement between annotators, from stored simulations and scores: records in, ``Agreement`` out.

Simulators predict on a shared 0-10 scale. Alpha is computed on those predictions divided by 10
(0-1); interval alpha is unchanged by a scale common to all raters, so this equals alpha on the
raw 0-10 values. It measures *absolute* agreement: a simulator that says 8 where another says 4 is
disagreeing, even if their rankings match. Pearson r between simulators measures *relative*
agreement (invariant to each simulator's own offset and scale); both are reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np

from neuroscribe.agree.metrics import krippendorff_alpha_interval, pairable_count, spearman
from neuroscribe.records import Agreement, Explanation, Score, Simulation
from neuroscribe.registry import HEADLINE_SCORE
from neuroscribe.score.metrics import MetricValue, pearson, pearson_pooled

SIMULATOR_SCALE = 10.0
"""Top of the simulators' prediction scale; predictions are divided by it before alpha."""

AGREEMENT_KINDS: dict[str, str] = {
    "alpha_simulators": "Krippendorff's alpha (interval) across simulators, items = tokens of the "
    "unit's windows (per explanation), predictions on the shared 0-10 scale rescaled to 0-1.",
    "pearson_simulators": "Pearson r between two simulators' predictions on the tokens both "
    "predicted (annotators = the two simulators).",
    "mean_pearson_simulators": "Mean of the defined pearson_simulators values of the unit.",
    "explainer_sim_corr": "Pearson r between the simulated activations of two explainers' "
    "explanations under the same simulator, pooled over shared tokens, averaged over simulators.",
    "explainer_text_similarity": "Cosine similarity of the MiniLM sentence embeddings "
    "(all-MiniLM-L6-v2, mean-pooled, unit length) of two explainers' explanations of the unit.",
    "spearman_<score kind>": "Spearman rho across units between two annotators' (explainer|"
    "simulator) scores of that kind; unit_key is NULL.",
    "alpha_simulators_all_units": "Krippendorff's alpha (interval) between simulators over the "
    "tokens of every unit's simulated windows pooled (items = (explanation, window, token)), one "
    "row per simulator pair and, with three or more simulators, one for all; unit_key is NULL.",
    "control_sim_corr": "Pearson r between a simulator's predictions for an explainer's "
    "explanation and for the unit's shuffled control, pooled over shared tokens (annotators = "
    "explainer, simulator); near 1 means the simulator ignores the explanation.",
    "explainer_sim_corr_adjusted": "explainer_sim_corr corrected for what the simulator shows "
    "with the shuffled control: mean over simulators of clip((r - c) / (1 - c), 0, 1), c = "
    "max(0, mean control_sim_corr of the two explainers); 0 when c = 1.",
    "clarity": "Per unit: mean of the available components alpha_simulators, "
    "explainer_sim_corr_adjusted and explainer_text_similarity (each averaged over the unit's "
    "rows, clipped to [0, 1]).",
}
"""Every agreement kind, with its definition. Values are None (with a reason) when undefined."""

ItemKey = tuple[str, str]
"""(explanation_id, window_id): one simulated window; its tokens are the rated items."""


def _by_item(simulator: str, simulations: Sequence[Simulation]) -> dict[ItemKey, Simulation]:
    """Usable (status ok) simulations keyed by (explanation, window)."""
    out: dict[ItemKey, Simulation] = {}
    for sim in simulations:
        if sim.simulator != simulator:
            raise ValueError(
                f"simulation {sim.simulation_id} is by {sim.simulator}, not {simulator}"
            )
        key = (sim.explanation_id, sim.window_id)
        if key in out:
            raise ValueError(f"{simulator} has two simulations of {key}")
        if sim.status == "ok":
            out[key] = sim
    return out


def _check_length(key: ItemKey, sims: Sequence[Simulation]) -> int:
    lengths = {len(s.predictions) for s in sims}
    if len(lengths) > 1:
        raise ValueError(f"simulations of {key} disagree on the number of tokens: {lengths}")
    return lengths.pop()


def _pair_reason(reason: str | None, a: str, b: str) -> str | None:
    """Name the annotator behind a Pearson "constant" reason (its first argument is ``a``)."""
    if reason == "constant activations":
        return f"constant predictions from {a}"
    if reason == "constant predictions":
        return f"constant predictions from {b}"
    return reason


def ratings_matrix(
    simulations: Mapping[str, Sequence[Simulation]], windows: Sequence[str] | None = None
) -> np.ndarray:
    """``[n_simulators, n_items]`` predictions divided by ``SIMULATOR_SCALE``, NaN where missing.

    Rows are the simulators in sorted order. Items are the tokens of each (explanation, window)
    that at least one simulator simulated usably, explanations sorted, windows in the order of
    ``windows`` (default: every simulated window, sorted). Failed simulations are missing values.
    """
    names = sorted(simulations)
    indexed = {s: _by_item(s, simulations[s]) for s in names}
    if windows is None:
        windows = sorted({w for idx in indexed.values() for _, w in idx})
    explanation_ids = sorted({e for idx in indexed.values() for e, _ in idx})
    columns: list[np.ndarray] = []
    for e in explanation_ids:
        for w in windows:
            present = [indexed[s].get((e, w)) for s in names]
            usable = [p for p in present if p is not None]
            if not usable:
                continue
            block = np.full((len(names), _check_length((e, w), usable)), np.nan)
            for i, p in enumerate(present):
                if p is not None:
                    block[i] = p.predictions
            columns.append(block)
    ratings = np.concatenate(columns, axis=1) if columns else np.zeros((len(names), 0))
    return ratings / SIMULATOR_SCALE


def agree_unit(
    unit_key: str, simulations: Mapping[str, Sequence[Simulation]], windows: Sequence[str]
) -> list[Agreement]:
    """Agreement across simulators on the same tokens of one unit.

    ``simulations`` maps each simulator to its simulations, normally of one explanation; if they
    cover several explanations of the unit, each (explanation, token) is a separate item. Only
    the windows named in ``windows`` are used; failed simulations are missing values. Returns
    ``alpha_simulators``, one ``pearson_simulators`` row per simulator pair and
    ``mean_pearson_simulators``; nothing when fewer than two simulators are given.
    """
    names = sorted(simulations)
    if len(names) < 2:
        return []
    ratings = ratings_matrix(simulations, windows)

    alpha = krippendorff_alpha_interval(ratings)
    rows = [
        Agreement(
            unit_key=unit_key,
            kind="alpha_simulators",
            annotators=tuple(names),
            value=alpha.value,
            reason=alpha.reason,
            n=pairable_count(ratings),
        )
    ]
    pair_values = []
    for i, j in combinations(range(len(names)), 2):
        both = ~(np.isnan(ratings[i]) | np.isnan(ratings[j]))
        r = pearson(ratings[i, both], ratings[j, both])
        if r.value is not None:
            pair_values.append(r.value)
        rows.append(
            Agreement(
                unit_key=unit_key,
                kind="pearson_simulators",
                annotators=(names[i], names[j]),
                value=r.value,
                reason=_pair_reason(r.reason, names[i], names[j]),
                n=int(both.sum()),
            )
        )
    rows.append(
        Agreement(
            unit_key=unit_key,
            kind="mean_pearson_simulators",
            annotators=tuple(names),
            value=float(np.mean(pair_values)) if pair_values else None,
            reason=None if pair_values else "no defined pairwise correlation",
            n=pairable_count(ratings),
        )
    )
    return rows


def by_simulator(owner: str, sims: Sequence[Simulation]) -> dict[str, dict[str, Simulation]]:
    """Usable (ok) simulations of one explanation, by simulator, then by window."""
    ids = {s.explanation_id for s in sims}
    if len(ids) > 1:
        raise ValueError(f"{owner}: simulations of several explanations {sorted(ids)}")
    out: dict[str, dict[str, Simulation]] = {}
    for sim in sims:
        windows = out.setdefault(sim.simulator, {})
        if sim.window_id in windows:
            raise ValueError(f"{owner}: two simulations of window {sim.window_id}")
        if sim.status == "ok":
            windows[sim.window_id] = sim
    return out


def pooled_corr(
    a: Mapping[str, Simulation], b: Mapping[str, Simulation], simulator: str
) -> tuple[MetricValue, int]:
    """Pearson r between two explanations' predictions (by ``simulator``, window id -> simulation)
    pooled over the windows both have, and the number of tokens it rests on."""
    shared = sorted(set(a) & set(b))
    for w in shared:
        _check_length((w, simulator), [a[w], b[w]])
    r = pearson_pooled([a[w].predictions for w in shared], [b[w].predictions for w in shared])
    return r, sum(len(a[w].predictions) for w in shared)


def agree_explainers(
    unit_key: str, explanations_sims: Mapping[str, Sequence[Simulation]]
) -> list[Agreement]:
    """Correlation between different explainers' explanations of one unit, as simulated.

    ``explanations_sims`` maps each explainer to the simulations of its one explanation of the
    unit (by any number of simulators). For each pair of explainers and each simulator that
    simulated both, Pearson r is pooled over the windows both have usable simulations of; the
    row's value is the mean of the defined per-simulator r, and ``n`` the tokens behind them.
    One ``explainer_sim_corr`` row per explainer pair.
    """
    per_explainer = {x: by_simulator(x, sims) for x, sims in explanations_sims.items()}
    rows = []
    for a, b in combinations(sorted(per_explainer), 2):
        values, reasons, n = [], [], 0
        for simulator in sorted(set(per_explainer[a]) & set(per_explainer[b])):
            r, m = pooled_corr(per_explainer[a][simulator], per_explainer[b][simulator], simulator)
            if r.value is None:
                reasons.append(f"{simulator}: {_pair_reason(r.reason, a, b)}")
            else:
                values.append(r.value)
                n += m
        rows.append(
            Agreement(
                unit_key=unit_key,
                kind="explainer_sim_corr",
                annotators=(a, b),
                value=float(np.mean(values)) if values else None,
                reason=None if values else ("; ".join(reasons) or "no shared simulator"),
                n=n,
            )
        )
    return rows


def annotator_label(explainer: str, simulator: str) -> str:
    """Name of an (explainer, simulator) annotator in ``Agreement.annotators``."""
    return f"{explainer}|{simulator}"


def agree_across_units(
    scores: Sequence[Score],
    explanations: Sequence[Explanation],
    score_kinds: Sequence[str] = (HEADLINE_SCORE,),
    min_units: int = 3,
) -> list[Agreement]:
    """Spearman rho across units between annotators' scores, for each score kind.

    An annotator is an (explainer, simulator) pair, labelled ``annotator_label``. A score counts
    only if its explanation is in ``explanations`` (pass the selected ones), which gives its unit
    and explainer. For each kind and each pair of annotators, rho is taken over the units both
    scored with a defined value; None when fewer than ``min_units`` such units. ``unit_key`` is
    None and the kind is ``spearman_<score kind>``.
    """
    by_id = {e.explanation_id: e for e in explanations}
    rows = []
    for kind in score_kinds:
        table: dict[str, dict[str, float]] = {}
        seen: set[tuple[str, str]] = set()
        for s in scores:
            e = by_id.get(s.explanation_id)
            if s.kind != kind or e is None:
                continue
            label = annotator_label(e.explainer, s.simulator)
            if (label, e.unit_key) in seen:
                raise ValueError(f"two {kind} scores of unit {e.unit_key} by {label}")
            seen.add((label, e.unit_key))
            per_unit = table.setdefault(label, {})
            if s.value is not None:
                per_unit[e.unit_key] = s.value
        for a, b in combinations(sorted(table), 2):
            units = sorted(set(table[a]) & set(table[b]))
            value: float | None
            reason: str | None
            if len(units) < min_units:
                value, reason = None, f"fewer than {min_units} units scored by both"
            else:
                value, reason = spearman([table[a][u] for u in units], [table[b][u] for u in units])
            rows.append(
                Agreement(
                    unit_key=None,
                    kind=f"spearman_{kind}",
                    annotators=(a, b),
                    value=value,
                    reason=reason,
                    n=len(units),
                )
            )
    return rows


CLARITY_COMPONENTS = (
    "alpha_simulators",
    "explainer_sim_corr_adjusted",
    "explainer_text_similarity",
)
"""Agreement kinds that clarity averages, each first averaged over the unit's rows of that kind."""


def clarity(agreements: Sequence[Agreement]) -> float | None:
    """How much annotators agree about one unit, in [0, 1]; None if nothing is available.

    clarity = mean of the available components among
      - the mean of the unit's defined ``alpha_simulators`` values (simulators agree on tokens);
      - the mean of the unit's defined ``explainer_sim_corr_adjusted`` values (explainers'
        explanations make the simulators predict alike, beyond the agreement each simulator
        shows between an explanation and the unit's shuffled control, so a simulator
        that ignores the explanation adds 0; see ``neuroscribe.agree.control``);
      - the mean of the unit's defined ``explainer_text_similarity`` values (explainers say
        the same thing in words);
    each clipped to [0, 1] before averaging. Negative agreement counts as none (0). A component
    with no defined value is left out, not counted as 0. Other kinds are ignored. Note that
    MiniLM gives unrelated sentences a cosine near 0-0.2, not exactly 0.
    """
    units = {a.unit_key for a in agreements}
    if len(units) > 1 or None in units:
        raise ValueError(f"clarity is per unit; got agreements of {sorted(map(str, units))}")
    components = []
    for kind in CLARITY_COMPONENTS:
        values = [a.value for a in agreements if a.kind == kind and a.value is not None]
        if values:
            components.append(min(1.0, max(0.0, float(np.mean(values)))))
    return float(np.mean(components)) if components else None

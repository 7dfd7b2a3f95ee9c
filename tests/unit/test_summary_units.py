"""The run table's best and worst units when a run covers several sites: units are (site,
index), so two sites' neuron 3 are two units, ranked on their own scores."""

from __future__ import annotations

from neuroscribe.cli.summary import UNITS_SHOWN, _best_and_worst


def test_best_and_worst_keep_sites_apart() -> None:
    sites = ["layers.0.mlp", "layers.1.mlp"]
    units = [(site, i) for i in range(UNITS_SHOWN) for site in sites]
    units.append(("layers.0.mlp", 99))
    # layers.1 scores above layers.0 at every index; the control never counts.
    rows = [
        {"site": s, "unit_index": i, "score": i / 100 + (0.5 if s == sites[1] else 0.0),
         "explainer": "baseline/ngram"}
        for s, i in units
    ] + [{"site": sites[0], "unit_index": 0, "score": 9.0, "explainer": "control/shuffled"}]
    shown = _best_and_worst(units, rows)
    assert len(shown) == 2 * UNITS_SHOWN and len(set(shown)) == 2 * UNITS_SHOWN
    assert shown[0] == (sites[0], 99)  # 0.99, the best
    assert shown[1:UNITS_SHOWN] == [(sites[1], i) for i in reversed(range(1, UNITS_SHOWN))]
    assert shown[UNITS_SHOWN:] == [(sites[0], i) for i in reversed(range(UNITS_SHOWN))]

"""Explainer agreement read against the shuffled control: does the simulator listen?

``explainer_sim_corr`` is high when two explainers' explanations make a simulator predict alike.
A simulator that ignores the explanation (it predicts from the text alone) makes *every* pair of
explanations predict alike, a real one and an unrelated one included: on the 64-unit default run
SmolLM2's predictions for two explainers correlated at 0.93 and its score for the shuffled
control equalled the real one's. So the agreement is corrected by the agreement the same
simulator shows between each explanation and the unit's shuffled control (another unit's
explanation), as Cohen's kappa corrects observed agreement by chance agreement.

For a unit, a simulator ``s`` and explanations ``x``, ``y``, let ``r_s(x, y)`` be the Pearson r
between ``s``'s predictions for ``x`` and for ``y``, pooled over the tokens of the windows both
have usable simulations of. Then

- ``control_sim_corr`` (annotators: explainer, simulator) = ``r_s(e, control)``: near 1 means
  ``s`` predicts the same whatever the explanation says;
- ``explainer_sim_corr_adjusted`` (annotators: two explainers ``a``, ``b``) = the mean over the
  simulators ``s`` with a defined ``r_s(a, b)`` and at least one defined control correlation of

      kappa_s = clip((r_s(a, b) - c_s) / (1 - c_s), 0, 1),
      c_s = max(0, mean of the defined r_s(a, control), r_s(b, control)),

  with ``kappa_s = 0`` when ``c_s = 1`` (the simulator does not tell the explanations apart).
  A simulator that ignores the explanation gets ``r_s(a, b) ≈ c_s``, hence ``kappa_s ≈ 0``; one
  whose predictions for the control are unrelated (``c_s <= 0``) keeps ``r_s(a, b)``, clipped
  to [0, 1]. NULL with a reason when no simulator qualifies (e.g. controls were not scored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np

from neuroscribe.agree.agree import by_simulator, pooled_corr
from neuroscribe.records import Agreement, Simulation

NO_DISCRIMINATION = 1.0 - 1e-9
"""A chance correlation at or above this counts as 1: the simulator gives no information."""


def kappa(observed: float, chance: float) -> float:
    """``clip((observed - c) / (1 - c), 0, 1)`` with ``c = max(0, chance)``; 0 when c = 1."""
    c = max(0.0, chance)
    if c >= NO_DISCRIMINATION:
        return 0.0
    return min(1.0, max(0.0, (observed - c) / (1.0 - c)))


def agree_with_control(
    unit_key: str,
    explanations_sims: Mapping[str, Sequence[Simulation]],
    control_sims: Sequence[Simulation],
) -> list[Agreement]:
    """``control_sim_corr`` per (explainer, simulator) and ``explainer_sim_corr_adjusted`` per
    explainer pair of one unit (definitions in the module docstring).

    ``explanations_sims`` maps each explainer to the simulations of its one explanation of the
    unit; ``control_sims`` are the simulations of the unit's shuffled control (empty when there
    is none).
    """
    per_explainer = {x: by_simulator(x, sims) for x, sims in explanations_sims.items()}
    control = by_simulator("control", control_sims)
    chance: dict[tuple[str, str], float | None] = {}
    rows = []
    for x in sorted(per_explainer):
        for s in sorted(set(per_explainer[x]) & set(control)):
            r, n = pooled_corr(per_explainer[x][s], control[s], s)
            chance[(x, s)] = r.value
            rows.append(
                Agreement(
                    unit_key=unit_key,
                    kind="control_sim_corr",
                    annotators=(x, s),
                    value=r.value,
                    reason={
                        "constant activations": f"constant predictions from {s} for {x}",
                        "constant predictions": f"constant predictions from {s} for the control",
                    }.get(r.reason or "", r.reason),
                    n=n,
                )
            )
    for a, b in combinations(sorted(per_explainer), 2):
        kappas, reasons, n = [], [], 0
        for s in sorted(set(per_explainer[a]) & set(per_explainer[b])):
            r, m = pooled_corr(per_explainer[a][s], per_explainer[b][s], s)
            c = [v for v in (chance.get((a, s)), chance.get((b, s))) if v is not None]
            if r.value is None:
                reasons.append(f"{s}: {r.reason}")
            elif not c:
                reasons.append(f"{s}: no defined correlation with the shuffled control")
            else:
                kappas.append(kappa(r.value, float(np.mean(c))))
                n += m
        rows.append(
            Agreement(
                unit_key=unit_key,
                kind="explainer_sim_corr_adjusted",
                annotators=(a, b),
                value=float(np.mean(kappas)) if kappas else None,
                reason=None if kappas else ("; ".join(reasons) or "no shared simulator"),
                n=n,
            )
        )
    return rows

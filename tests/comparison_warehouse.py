"""A finished comparison run added to the small warehouse of ``warehouse_fixtures``, with
hand-chosen correlations, so that exports and the report's compare page are checked against
known rows without loading a model.

Subject B is ``warehouse_fixtures.SUBJECT`` (whose units have explanations), subject A another
model. ``R`` holds Pearson r [units of A, units of B] per site; ``CKA`` every site pair's CKA.
With the threshold 0.5, ``model_diff`` holds exactly ``CHANGES`` (largest change first).

Import with ``sys.path`` pointing at ``tests/`` (``tests/`` is not a package).
"""

from __future__ import annotations

import math
from contextlib import closing
from pathlib import Path

import numpy as np
from warehouse_fixtures import SUBJECT

from neuroscribe.compare.stream import Comparison, SitePair, match_units
from neuroscribe.config import RunConfig
from neuroscribe.records import Subject
from neuroscribe.warehouse import connect
from neuroscribe.warehouse.comparisons import save_comparison
from neuroscribe.warehouse.runs import finish_run, start_run

COMPARE_RUN_ID = "20250103T000000-compare"
OTHER = Subject(name="tiny-llama-seed2", weights_hash="fedcba9876543210", architecture="llama",
                n_layers=2)
THRESHOLD = 0.5
NAN = math.nan
R = {
    "layers.1.mlp": np.array([
        [0.90, 0.10, 0.00, 0.05],
        [0.10, 0.20, 0.10, 0.00],
        [0.00, 0.10, 0.35, 0.10],
        [0.05, 0.00, 0.10, 0.95],
    ]),
    # A's unit 0 is constant (no defined r: a NaN row); B's unit 5 is new
    "layers.0.resid": np.array([
        [NAN, NAN, NAN, NAN, NAN, NAN],
        [0.70, 0.99, 0.00, 0.00, 0.00, 0.00],
        [0.00, 0.00, 0.99, 0.00, 0.00, 0.00],
        [0.00, 0.00, 0.00, 0.99, 0.00, 0.00],
        [0.00, 0.00, 0.00, 0.00, 0.99, 0.00],
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.40],
    ]),
}
CKA = {
    ("layers.0.resid", "layers.0.resid"): 0.93,
    ("layers.0.resid", "layers.1.mlp"): 0.41,
    ("layers.1.mlp", "layers.0.resid"): 0.37,
    ("layers.1.mlp", "layers.1.mlp"): 0.81,
}
CHANGES = [  # (change, subject, site, unit, best-partner r)
    ("lost", OTHER.subject_id, "layers.1.mlp", 1, 0.2),
    ("new", SUBJECT.subject_id, "layers.1.mlp", 1, 0.2),
    ("lost", OTHER.subject_id, "layers.1.mlp", 2, 0.35),
    ("new", SUBJECT.subject_id, "layers.1.mlp", 2, 0.35),
    ("lost", OTHER.subject_id, "layers.0.resid", 5, 0.4),
    ("new", SUBJECT.subject_id, "layers.0.resid", 5, 0.4),
]


def comparison() -> Comparison:
    pairs = []
    for (site_a, site_b), cka in CKA.items():
        r = R[site_a] if site_a == site_b else None
        n_a, n_b = len(R[site_a]), len(R[site_b])
        pairs.append(SitePair(
            OTHER, SUBJECT, site_a, site_b, 1200, n_a, n_b,
            n_a - (1 if site_a == "layers.0.resid" else 0), n_b, cka,
            match_units(r) if r is not None else None,
        ))
    return Comparison([OTHER, SUBJECT], "corpus", 150, pairs, True)


def add_comparison(path: Path, run_id: str = COMPARE_RUN_ID) -> str:
    """Store the comparison as a finished run in the warehouse at ``path``; return its id."""
    cfg = RunConfig.model_validate(
        {"compare": {"models": [OTHER.name, SUBJECT.name], "threshold": THRESHOLD}}
    )
    with closing(connect(path)) as con:
        start_run(con, run_id, cfg)
        save_comparison(con, run_id, comparison(), THRESHOLD)
        finish_run(con, run_id, "finished")
    return run_id

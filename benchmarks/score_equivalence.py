"""Rescore the stored simulations of a warehouse's latest finished run with this checkout's
scorer and fuzz path, and compare every score row with the stored one: NULLs and reasons must
match, and values and interval bounds agree to the printed difference. Run it on a copy of a
warehouse scored by another version (it opens the file for writing).

    python benchmarks/score_equivalence.py copy-of-warehouse.duckdb
"""
import json
import sys
import time
from contextlib import closing

from neuroscribe.config import RunConfig
from neuroscribe.llm.base import Ledger
from neuroscribe.score import score_units
from neuroscribe.simulate import fuzz_units
from neuroscribe.warehouse import annotations as annotated
from neuroscribe.warehouse import collection, connect

path = sys.argv[1]
with closing(connect(path)) as con:
    run_id, cfg_json = con.execute(
        "SELECT run_id, config_json FROM runs WHERE status = 'finished'"
        " ORDER BY started_at DESC LIMIT 1"
    ).fetchone()
    cfg = RunConfig.model_validate(json.loads(cfg_json) if isinstance(cfg_json, str) else cfg_json)
    keys = [r[0] for r in con.execute("SELECT unit_key FROM units").fetchall()]
    units = collection.load_units(con, keys)
    windows = collection.load_windows(con, (w.window_id for u in units for w in u.windows))
    ids = annotated.current_explanation_ids(con, keys)
    explanations = annotated.load_explanations(con, ids)
    sims = annotated.load_simulations(con, ids)
    stored = {(s.explanation_id, s.simulator, s.kind): s for s in annotated.load_scores(con, ids)}
t = time.perf_counter()
new = score_units(explanations, units, sims, cfg)
t_score = time.perf_counter() - t
t = time.perf_counter()
fuzz = fuzz_units(explanations, units, windows, cfg, Ledger())
t_fuzz = time.perf_counter() - t
worst, n, diff_reason, missing = 0.0, 0, 0, 0
for s in new + fuzz:
    old = stored.get((s.explanation_id, s.simulator, s.kind))
    if old is None:
        missing += 1
        continue
    n += 1
    if old.reason != s.reason or (old.value is None) != (s.value is None):
        diff_reason += 1
    for a, b in ((old.value, s.value), (old.ci_low, s.ci_low), (old.ci_high, s.ci_high)):
        if a is not None and b is not None:
            worst = max(worst, abs(a - b))
        elif (a is None) != (b is None):
            diff_reason += 1
print(f"{len(units)} units, {len(new)} scores + {len(fuzz)} fuzz scores recomputed "
      f"(score {t_score:.1f} s, fuzz {t_fuzz:.1f} s); compared {n} with the stored rows "
      f"({missing} not stored): {diff_reason} differ in NULL/reason, largest difference in "
      f"value or CI bound {worst:.2e}")

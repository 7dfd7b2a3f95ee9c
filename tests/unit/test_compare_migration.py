"""Migration 0013 on a warehouse that holds a comparison made before it: every row and column
kept, the matches read as matches by activation of the subjects' own units, and the views give
what they gave. And two SAE pairs of one subject and site stored side by side."""

from __future__ import annotations

from contextlib import closing

import duckdb
import numpy as np
import pytest
from comparison_warehouse import OTHER, THRESHOLD
from warehouse_fixtures import SUBJECT

from neuroscribe.compare.stream import Comparison, SitePair, match_units
from neuroscribe.config import RunConfig
from neuroscribe.warehouse import connect, open_readonly
from neuroscribe.warehouse.comparisons import (
    model_diff_rows,
    save_comparison,
    universality_rows,
)
from neuroscribe.warehouse.db import migrations
from neuroscribe.warehouse.rows import fetch_dicts
from neuroscribe.warehouse.runs import finish_run, start_run

SITE = "layers.1.mlp"
R = np.array([  # [A, B]: B1 has no partner (0.2): new; A1's best is 0.2: lost
    [0.90, 0.10, 0.00],
    [0.10, 0.20, 0.10],
    [0.00, 0.10, 0.95],
])


def _before_0013(path) -> None:
    """A warehouse migrated to 0011, holding one finished comparison run written as then."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    for number, name, sql in migrations():
        if number > 11:
            break
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [number, name])
    start_run(con, "old", RunConfig.model_validate({"compare": {"models": ["a", "b"]}}))
    finish_run(con, "old", "finished")
    con.execute(
        "INSERT INTO site_comparisons VALUES ('old', ?, ?, ?, ?, 'corpus', 900, 3, 3, 3, 3,"
        " 0.8, true, ?, 0.7, 0.2)",
        [OTHER.subject_id, SUBJECT.subject_id, SITE, SITE, THRESHOLD],
    )
    m = match_units(R)
    for kind, a, b, r in zip(m.kind, m.unit_a.tolist(), m.unit_b.tolist(), m.r.tolist(),
                             strict=True):
        con.execute(
            "INSERT INTO unit_matches VALUES ('old', ?, ?, ?, ?, ?, ?, ?, ?)",
            [OTHER.subject_id, SUBJECT.subject_id, SITE, SITE, kind, a, b, r],
        )
    con.close()


def test_rows_made_before_0013_keep_their_meaning(warehouse_path):
    _before_0013(warehouse_path)
    connect(warehouse_path).close()  # applies 0012, 0013 and the views
    with closing(open_readonly(warehouse_path)) as con:
        (pair,) = fetch_dicts(con, "SELECT * FROM site_comparisons")
        assert pair["sae_a_id"] is None and pair["sae_b_id"] is None
        assert (pair["n_tokens"], pair["cka"], pair["similarity"]) == (900, 0.8, 0.7)
        matches = fetch_dicts(con, "SELECT basis, sae_a_id, sae_b_id FROM unit_matches")
        assert len(matches) == 9
        assert {(m["basis"], m["sae_a_id"], m["sae_b_id"]) for m in matches} == {
            ("activation", None, None)
        }
        (row,) = universality_rows(con, "old")
        assert row["basis"] == "activation" and row["one_to_one_agreement"] is None
        assert row["share_a_matched"] == pytest.approx(2 / 3)
        assert row["share_b_matched"] == pytest.approx(2 / 3)
        assert row["share_one_to_one"] == pytest.approx(2 / 3)
        diff = {(d["change"], d["unit_index"], d["partner_index"])
                for d in model_diff_rows(con, "old")}
        assert diff == {("new", 1, 1), ("lost", 1, 1)}


def test_two_sae_pairs_of_one_subject_and_site_are_stored_side_by_side(warehouse_path):
    decoder = np.array([[1.0, 0.0], [0.0, 1.0]])
    pairs = [
        SitePair(SUBJECT, SUBJECT, SITE, SITE, 100, 2, 2, 2, 2, 0.9,
                 match_units(np.array([[0.9, 0.1], [0.1, 0.8]])), sae_a=a, sae_b=b,
                 by_decoder=match_units(decoder if b == "s2" else decoder[::-1]))
        for a, b in (("s1", "s2"), ("s1", "s3"))
    ]
    with closing(connect(warehouse_path)) as con:
        start_run(con, "saes", RunConfig.model_validate({"compare": {"saes": ["x", "y"]}}))
        save_comparison(con, "saes", Comparison([SUBJECT], "corpus", 10, pairs, True), 0.5)
        finish_run(con, "saes", "finished")
        rows = universality_rows(con, "saes")
    assert [(r["sae_b_id"], r["basis"]) for r in rows] == [
        ("s2", "activation"), ("s2", "decoder"), ("s3", "activation"), ("s3", "decoder")
    ]
    # s2's decoder matching makes the activation pairs (0-0, 1-1); s3's makes neither
    assert [r["one_to_one_agreement"] for r in rows] == [1.0, 1.0, 0.0, 0.0]
    assert [r["share_a_matched"] for r in rows] == [1.0, 1.0, 1.0, 1.0]

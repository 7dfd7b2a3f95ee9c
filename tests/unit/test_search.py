"""`neuroscribe search` by text, its filters, formats and bad input, on the small test warehouse
(no model is loaded: searches by meaning are in tests/integration/test_search_meaning.py)."""

from __future__ import annotations

import csv
import io
import json
from contextlib import closing

import duckdb
import pytest
from typer.testing import CliRunner
from warehouse_fixtures import EXPLAINER_A, SIM_FAKE, SIM_LEX, build_warehouse

from neuroscribe.cli import app
from neuroscribe.warehouse import connect


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return build_warehouse(tmp_path_factory.mktemp("search") / "w.duckdb").path


def search(path, *args: str):
    return CliRunner().invoke(app, ["--warehouse", str(path), "search", *args])


def as_json(path, *args: str) -> list[dict]:
    r = search(path, *args, "--format", "json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def test_text_search_ignores_case_and_shows_the_best_score(warehouse):
    rows = as_json(warehouse, "--text", "FISH")
    # Only the selected explanation of a finished run: not the shuffled control "sea fish",
    # nor the text of the run that never finished.
    assert [(r["explanation"], r["best_score"], r["best_simulator"]) for r in rows] == [
        ('mentions of "fish" & <chips>', 0.80, SIM_LEX)
    ]
    assert rows[0]["site"] == "layers.1.mlp" and rows[0]["unit_index"] == 0
    assert "similarity" not in rows[0]
    # "any food" lost best-of-n (not selected): only "seafood words" matches.
    assert [r["explanation"] for r in as_json(warehouse, "--text", "food")] == ["seafood words"]
    assert as_json(warehouse, "--text", "ghost") == []


def test_regex_search_orders_by_best_score(warehouse):
    rows = as_json(warehouse, "--regex", "^(the WORD|sea)")
    assert [(r["explanation"], r["best_score"]) for r in rows] == [
        ("the word salt", 0.90),
        ("seafood words", 0.75),
    ]
    assert rows[1]["best_simulator"] == SIM_FAKE  # 0.75 under the fake simulator, 0.60 lexical


def test_filters_and_limit(warehouse):
    everything = as_json(warehouse, "--regex", ".")
    assert len(everything) == 7  # 4 units: 7 selected, ok explanations of the two explainers
    mine = as_json(warehouse, "--regex", ".", "--annotator", EXPLAINER_A)
    assert len(mine) == 4 and {r["explainer"] for r in mine} == {EXPLAINER_A}
    assert as_json(warehouse, "--regex", ".", "--explainer", EXPLAINER_A) == mine
    resid = as_json(warehouse, "--regex", ".", "--site", "layers.0.*")
    assert [(r["site"], r["explanation"]) for r in resid] == [("layers.0.resid", "line breaks")]
    top = as_json(warehouse, "--regex", ".", "--limit", "2")
    assert top == everything[:2] and top[0]["best_score"] == 0.90


def test_table_and_csv_formats(warehouse):
    r = search(warehouse, "--text", "salt")
    assert r.exit_code == 0, r.stderr
    assert "the word salt" in r.stdout and "+0.900" in r.stdout
    assert "1 of 7 explanations" in r.stdout
    r = search(warehouse, "--text", "salt", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [(x["explanation"], x["best_score"]) for x in rows] == [("the word salt", "0.9")]


def test_bad_options_exit_2_with_one_message(warehouse):
    cases = [
        (["--text", "x", "--format", "xml"], "unknown format 'xml'"),
        (["--text", "--regex", "x"], "exclude each other"),
        (["--text", "x", "--limit", "0"], "--limit must be at least 1"),
        (["--text", "   "], "the search query is empty"),
        (["--regex", "(unclosed"], "invalid regular expression '(unclosed'"),
    ]
    for args, needle in cases:
        r = search(warehouse, *args)
        assert r.exit_code == 2, (args, r.stdout, r.stderr)
        assert needle in r.stderr, (args, r.stderr)
        assert r.exception is None or isinstance(r.exception, SystemExit)


def test_empty_or_missing_warehouse_says_so(tmp_path):
    missing = search(tmp_path / "none.duckdb", "--text", "x")
    assert missing.exit_code == 2 and "no warehouse at" in missing.stderr
    empty = tmp_path / "empty.duckdb"
    connect(empty).close()
    for args in (["--text", "x"], ["anything about fish"]):
        r = search(empty, *args)
        assert r.exit_code == 2, r.stderr
        assert "no explanations of a finished run are stored yet" in r.stderr


def test_meaning_search_without_embeddings_asks_for_a_backfill(warehouse, tmp_path):
    r = search(warehouse, "fish and chips")
    assert r.exit_code == 2
    assert "none of the 7 stored explanations has an embedding yet" in r.stderr
    assert "--backfill" in r.stderr
    # A warehouse of the schema before search (read-only: it cannot be upgraded here).
    old = tmp_path / "old.duckdb"
    old.write_bytes(warehouse.read_bytes())
    with closing(duckdb.connect(str(old))) as con:
        con.execute("DROP TABLE explanation_embeddings")
    r = search(old, "fish and chips")
    assert r.exit_code == 2 and "predates search" in r.stderr

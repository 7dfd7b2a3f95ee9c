"""The ``neuroscribe compare`` command in-process: one real run (Prefect flow, DuckDB file) of a
tiny GPT-2 against its planted copy, and bad input answered with one line, exit status 2 and
nothing written."""

from __future__ import annotations

import json
from contextlib import closing

import pytest
from collect_fixtures import build_tiny_model
from compare_fixtures import LAYER, PLANTED, build_known_answers
from typer.testing import CliRunner

from neuroscribe.cli import app
from neuroscribe.warehouse import open_readonly
from neuroscribe.warehouse.rows import fetch_dicts


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    return build_known_answers("gpt2", tmp_path_factory.mktemp("gpt2"))


def _args(*models, site="layers.*.mlp"):
    out = []
    for m in models:
        out += ["--model", str(m)]
    return [*out, "--site", site]


def _run(known, warehouse, *args):
    result = CliRunner().invoke(
        app,
        ["--warehouse", str(warehouse), "compare", *args, "--corpus", str(known.corpus),
         "--max-documents", "200", "--window-tokens", "8", "--max-windows", "100",
         "--batch-size", "16", "--explain", "0"],  # explaining: test_compare_explain.py
    )
    return result


def test_compare_stores_and_prints_the_planted_units(known, tmp_path):
    warehouse = tmp_path / "wh.duckdb"
    result = _run(known, warehouse, *_args(known.original, known.planted))
    print(result.output)
    assert result.exit_code == 0, result.output
    assert "universality" in result.output and "model_diff" in result.output
    with closing(open_readonly(warehouse)) as con:
        (run,) = fetch_dicts(con, "SELECT run_id, status, config_json FROM runs")
        diff = fetch_dicts(con, "SELECT change, site, unit_index FROM model_diff")
        n_pairs = fetch_dicts(con, "SELECT count(*) AS n FROM site_comparisons")[0]["n"]
    assert run["status"] == "finished"
    assert json.loads(run["config_json"])["compare"]["models"] == [
        str(known.original), str(known.planted)
    ]
    assert {(d["change"], d["site"], d["unit_index"]) for d in diff} == {
        ("new", f"layers.{LAYER}.mlp", u) for u in PLANTED
    }
    assert n_pairs == 4  # layer x layer, for the CKA heatmap


def _bad(known, tmp_path, *args) -> str:
    warehouse = tmp_path / "wh" / "never.duckdb"
    result = _run(known, warehouse, *args)
    assert result.exit_code == 2, result.output
    assert not warehouse.exists() and not warehouse.parent.exists()
    text = result.output.strip()
    assert text.startswith("error: ") and text.count("error:") == 1, text
    return " ".join(text.split())  # one message (wrapped where it is long)


def test_one_subject_is_bad_input(known, tmp_path):
    line = _bad(known, tmp_path, *_args(known.original))
    assert "two or more subjects" in line and str(known.original) in line


def test_no_subject_is_bad_input(known, tmp_path):
    assert "got none" in _bad(known, tmp_path, "--site", "layers.1.mlp")


def test_other_tokenizers_are_bad_input(known, tmp_path):
    import transformers as tf

    other = build_tiny_model("gpt2", tmp_path / "other", seed=2)
    tokenizer = tf.AutoTokenizer.from_pretrained(other)
    tokenizer.add_tokens(["zzqxunseen"])
    tokenizer.save_pretrained(other)
    line = _bad(known, tmp_path, *_args(known.original, other))
    assert "different tokenizers" in line


def test_a_site_missing_in_one_model_is_bad_input(known, tmp_path):
    import transformers as tf
    from collect_fixtures import tiny_config

    config = tiny_config("gpt2")
    config.n_layer = 3
    deeper = tmp_path / "deeper"
    tf.AutoModelForCausalLM.from_config(config).save_pretrained(deeper)
    tf.AutoTokenizer.from_pretrained(known.original).save_pretrained(deeper)
    line = _bad(known, tmp_path, *_args(known.original, deeper))
    assert "layers.2.mlp" in line and "missing" in line
    line = _bad(known, tmp_path, *_args(known.original, deeper, site="layers.2.mlp"))
    assert "layers.2.mlp" in line and str(known.original) in line

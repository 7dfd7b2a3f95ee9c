"""``neuroscribe compare --sae A --sae B ...`` in-process: one real run (Prefect flow, DuckDB
file) of three SAEs of one site of a tiny GPT-2 (one, a copy with its latents permuted, and
another of another size), and bad input answered with one line, exit status 2 and nothing
written."""

from __future__ import annotations

import json
from contextlib import closing

import pytest
import torch
from collect_fixtures import build_tiny_model, random_documents, write_sae, write_txt
from compare_fixtures import permuted_sae
from typer.testing import CliRunner

from neuroscribe.cli import app
from neuroscribe.collect.sae import load_sae
from neuroscribe.warehouse import open_readonly
from neuroscribe.warehouse.rows import fetch_dicts

D_SAE = 48


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sae-cli")
    model = build_tiny_model("gpt2", root / "model", seed=1)
    corpus = write_txt(root / "corpus.txt", random_documents(60, seed=2))
    sae = write_sae(root / "sae", d_sae=D_SAE, seed=4)
    perm = torch.randperm(D_SAE, generator=torch.Generator().manual_seed(5))
    copy = permuted_sae(sae, root / "sae_permuted", perm)
    other = write_sae(root / "sae_other", d_sae=24, seed=9)
    return root, model, corpus, sae, copy, other


def _run(setup, warehouse, *args):
    _, _, corpus, *_ = setup
    return CliRunner().invoke(
        app,
        ["--warehouse", str(warehouse), "compare", *args, "--corpus", str(corpus),
         "--max-documents", "200", "--window-tokens", "8", "--max-windows", "80",
         "--batch-size", "16", "--explain", "0"],
    )


def _saes(*folders):
    out = []
    for f in folders:
        out += ["--sae", str(f)]
    return out


def test_compare_saes_stores_both_matchings_and_prints_universality(setup, tmp_path):
    _, model, _, sae, copy, other = setup
    warehouse = tmp_path / "wh.duckdb"
    result = _run(setup, warehouse, "--model", str(model), *_saes(sae, copy, other))
    print(result.output)
    assert result.exit_code == 0, result.output
    assert "universality" in result.output and "agreement" in result.output
    ids = [load_sae(f).sae_id for f in (sae, copy, other)]
    with closing(open_readonly(warehouse)) as con:
        (run,) = fetch_dicts(con, "SELECT run_id, status, config_json FROM runs")
        pairs = fetch_dicts(con, "SELECT subject_a_id, subject_b_id, site_a, sae_a_id, sae_b_id,"
                                 " n_a, n_b FROM site_comparisons")
        bases = fetch_dicts(con, "SELECT sae_a_id, sae_b_id, basis, count(*) AS n"
                                 " FROM unit_matches GROUP BY ALL")
        rows = fetch_dicts(con, "SELECT * FROM universality")
        diff = fetch_dicts(con, "SELECT change, sae_id, other_sae_id FROM model_diff")
    assert run["status"] == "finished"
    assert json.loads(run["config_json"])["compare"]["saes"] == [str(sae), str(copy), str(other)]
    # every pair of SAEs, one subject and one site
    assert {(p["sae_a_id"], p["sae_b_id"]) for p in pairs} == {
        (ids[0], ids[1]), (ids[0], ids[2]), (ids[1], ids[2])
    }
    assert len({(p["subject_a_id"], p["subject_b_id"], p["site_a"]) for p in pairs}) == 1
    assert {(p["sae_a_id"], p["n_a"], p["n_b"]) for p in pairs if p["sae_b_id"] == ids[2]} == {
        (ids[0], D_SAE, 24), (ids[1], D_SAE, 24)
    }
    # both matchings of every pair: best_a, best_b and one-to-one rows of each
    n = {(b["sae_a_id"], b["sae_b_id"], b["basis"]): b["n"] for b in bases}
    assert n[ids[0], ids[1], "decoder"] == 3 * D_SAE
    assert n[ids[0], ids[2], "decoder"] == D_SAE + 24 + 24
    assert {basis for _, _, basis in n} == {"activation", "decoder"}
    assert len(rows) == 6
    same = [r for r in rows if (r["sae_a_id"], r["sae_b_id"]) == (ids[0], ids[1])]
    assert all(r["share_a_matched"] == 1.0 and r["one_to_one_agreement"] == 1.0 for r in same)
    # latents of the unrelated SAE have no partner in the others: new and lost, by activation
    assert diff and all(d["change"] in ("new", "lost") for d in diff)
    assert {frozenset((d["sae_id"], d["other_sae_id"])) for d in diff} <= {
        frozenset((ids[0], ids[2])), frozenset((ids[1], ids[2]))
    }


def _bad(setup, tmp_path, *args) -> str:
    warehouse = tmp_path / "wh" / "never.duckdb"
    result = _run(setup, warehouse, *args)
    assert result.exit_code == 2, result.output
    assert not warehouse.exists() and not warehouse.parent.exists()
    text = result.output.strip()
    assert text.startswith("error: ") and text.count("error:") == 1, text
    return " ".join(text.split())


def test_bad_sae_input_is_one_message_and_writes_nothing(setup, tmp_path):
    root, model, _, sae, copy, _ = setup
    m = ["--model", str(model)]
    line = _bad(setup, tmp_path, *m, *_saes(sae))
    assert "two or more SAEs" in line and str(sae) in line
    line = _bad(setup, tmp_path, *m, "--model", str(model), *_saes(sae, copy))
    assert "at most one --model with --sae" in line
    line = _bad(setup, tmp_path, *m, *_saes(sae, root / "no-such-sae"))
    assert "does not exist" in line and "no-such-sae" in line
    other_site = write_sae(tmp_path / "site0", d_sae=8, hook_name="blocks.0.hook_resid_post")
    line = _bad(setup, tmp_path, *m, *_saes(sae, other_site))
    assert "layers.1.resid" in line and "layers.0.resid" in line and "one site" in line
    narrow = write_sae(tmp_path / "narrow", d_in=16, d_sae=8)
    line = _bad(setup, tmp_path, *m, *_saes(sae, narrow))
    assert "16-wide" in line and "32 wide" in line

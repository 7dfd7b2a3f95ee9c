"""``export --view model_diff``: the view's rows in every format, the manifest's provenance, and
bad input (no comparison run, an unknown run, view or filter) answered before anything is
written."""

import hashlib
import json
import sys
from contextlib import closing
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from comparison_warehouse import CHANGES, COMPARE_RUN_ID, add_comparison  # noqa: E402
from warehouse_fixtures import RUN_ID, build_warehouse  # noqa: E402

from neuroscribe.export import (  # noqa: E402
    ExportError,
    OutputExistsError,
    export_model_diff,
    export_view,
)
from neuroscribe.export.manifest import manifest_path  # noqa: E402
from neuroscribe.warehouse import connect  # noqa: E402

SECOND_RUN_ID = "20250104T000000-compare"


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    p = tmp_path_factory.mktemp("wh") / "w.duckdb"
    build_warehouse(p)
    add_comparison(p)
    return p


@pytest.fixture(scope="module")
def con(path):
    with closing(connect(path)) as c:
        yield c


def read_back(path: Path, fmt: str, schema: pa.Schema) -> pa.Table:
    if fmt == "parquet":
        return pq.read_table(path)
    if fmt == "csv":
        opts = pacsv.ConvertOptions(column_types={f.name: f.type for f in schema},
                                    strings_can_be_null=True, quoted_strings_can_be_null=False)
        return pacsv.read_csv(path, convert_options=opts)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_rows_equal_the_view_largest_change_first(con, tmp_path, fmt):
    out = tmp_path / f"diff.{fmt}"
    manifest = export_model_diff(con, out, fmt)
    want = con.sql(
        "SELECT * FROM model_diff ORDER BY change_size DESC, change, subject_id, site, unit_index"
    ).to_arrow_table()
    got = read_back(out, fmt, want.schema)
    assert got.to_pylist() == want.to_pylist()
    assert [(r["change"], r["subject_id"], r["site"], r["unit_index"], r["partner_r"])
            for r in got.to_pylist()] == CHANGES
    explained = {(r["site"], r["unit_index"]): r["explanation"] for r in got.to_pylist()
                 if r["change"] == "new"}
    assert explained == {("layers.1.mlp", 1): "the word salt",
                         ("layers.1.mlp", 2): "ampersands",
                         ("layers.0.resid", 5): "line breaks"}
    assert manifest.rows == len(CHANGES) and manifest.source == "model_diff"
    assert manifest.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert manifest.columns == tuple(want.column_names)
    assert manifest.run_ids == (COMPARE_RUN_ID,)
    assert manifest.explanation_run_ids == (RUN_ID,)  # the runs that wrote the explanations
    assert manifest.prompt_shas == ("feedc0de",)
    assert manifest.filters == {"run_id": None}
    on_disk = json.loads(manifest_path(out).read_text())
    assert on_disk["sha256"] == manifest.sha256 and on_disk["source"] == "model_diff"
    again = tmp_path / f"again.{fmt}"
    export_model_diff(con, again, fmt)
    assert again.read_bytes() == out.read_bytes()  # the same warehouse, the same file


def test_one_run_of_several_and_an_empty_diff(tmp_path):
    path = tmp_path / "w.duckdb"
    build_warehouse(path)
    add_comparison(path)
    add_comparison(path, SECOND_RUN_ID)  # the same rows under another run id
    with closing(connect(path)) as c:
        both = export_model_diff(c, tmp_path / "both.parquet", "parquet")
        one = export_model_diff(c, tmp_path / "one.parquet", "parquet", run_id=SECOND_RUN_ID)
        c.execute("DELETE FROM unit_matches WHERE run_id = ?", [SECOND_RUN_ID])
        empty = export_model_diff(c, tmp_path / "empty.csv", "csv", run_id=SECOND_RUN_ID)
    assert both.rows == 2 * len(CHANGES) and both.run_ids == (COMPARE_RUN_ID, SECOND_RUN_ID)
    assert one.rows == len(CHANGES) and one.run_ids == (SECOND_RUN_ID,)
    assert {r["run_id"] for r in pq.read_table(tmp_path / "one.parquet").to_pylist()} == {
        SECOND_RUN_ID
    }
    assert empty.rows == 0 and empty.run_ids == (SECOND_RUN_ID,)  # no change is an answer too


def test_bad_input_one_message_and_nothing_written(con, tmp_path):
    out = tmp_path / "sub" / "diff.parquet"
    with pytest.raises(ExportError, match="is not a finished comparison run"):
        export_model_diff(con, out, "parquet", run_id=RUN_ID)  # a pipeline run
    with pytest.raises(ExportError, match="cannot hold model_diff"):
        export_model_diff(con, out, "neuronpedia")  # type: ignore[arg-type]
    with pytest.raises(ExportError, match="unknown view 'diffs'"):
        export_view(con, "diffs", out, "parquet")
    with pytest.raises(ExportError, match="cannot be filtered by --site"):
        export_view(con, "model_diff", out, "parquet", site="layers.1.mlp")
    assert not (tmp_path / "sub").exists()
    out.parent.mkdir()
    out.write_bytes(b"keep")
    with pytest.raises(OutputExistsError):
        export_model_diff(con, out, "parquet")
    assert out.read_bytes() == b"keep"


def test_no_comparison_run(tmp_path):
    path = tmp_path / "w.duckdb"
    build_warehouse(path)
    with closing(connect(path)) as c, pytest.raises(ExportError, match="no finished comparison"):
        export_model_diff(c, tmp_path / "diff.jsonl", "jsonl")
    assert not (tmp_path / "diff.jsonl").exists()
    assert not manifest_path(tmp_path / "diff.jsonl").exists()


def test_export_view_dispatches_by_name(con, tmp_path):
    m = export_view(con, "model_diff", tmp_path / "d.jsonl", "jsonl", run_id=COMPARE_RUN_ID)
    s = export_view(con, "scored_explanations", tmp_path / "s.jsonl", "jsonl", site=None,
                    run_id=RUN_ID)
    assert m.source == "model_diff" and m.rows == len(CHANGES)
    assert s.source == "scored_explanations" and s.rows == 72


def test_cli_writes_model_diff_and_answers_bad_input_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from neuroscribe.cli import app

    path = tmp_path / "w.duckdb"  # the module's warehouse is held open for writing
    build_warehouse(path)
    add_comparison(path)

    def run(*args: str):
        return CliRunner().invoke(app, ["--warehouse", str(path), "export", *args])

    out = tmp_path / "diff.csv"
    ok = run("--view", "model_diff", "--out", str(out), "--format", "csv")
    assert ok.exit_code == 0, ok.output
    assert f"{len(CHANGES)} rows -> {out}" in ok.output and manifest_path(out).exists()
    for args, message in [
        (["--view", "diffs"], "unknown view 'diffs'; export writes one of: scored_explanations,"
                              " model_diff"),
        (["--view", "model_diff", "--format", "neuronpedia"], "unknown format 'neuronpedia' for"
                                                              " model_diff"),
        (["--view", "model_diff", "--subject", "x"], "cannot be filtered by --subject"),
        (["--view", "model_diff", "--run-id", RUN_ID], "is not a finished comparison run"),
    ]:
        bad = run(*args, "--out", str(tmp_path / "bad.parquet"))
        assert bad.exit_code == 2, bad.output
        assert message in " ".join(bad.output.split()), bad.output
        assert not (tmp_path / "bad.parquet").exists()

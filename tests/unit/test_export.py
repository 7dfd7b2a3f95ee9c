import hashlib
import json
import os
import stat
import sys
from contextlib import closing
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from warehouse_fixtures import (  # noqa: E402
    CONTROL,
    EXPLAINER_A,
    PROMPT,
    RUN_ID,
    SIM_FAKE,
    SUBJECT,
    UNFINISHED_RUN_ID,
    build_warehouse,
)

from neuroscribe.export import (  # noqa: E402
    ExportError,
    OutputExistsError,
    export_scored,
    layer_id,
    model_id,
)
from neuroscribe.export.manifest import manifest_path  # noqa: E402
from neuroscribe.warehouse import connect  # noqa: E402

ORDER = (
    "subject_id, site, sae_id NULLS FIRST, unit_index, explainer, explanation_id, simulator,"
    " score_kind"
)


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    path = tmp_path_factory.mktemp("wh") / "w.duckdb"
    build_warehouse(path)
    with closing(connect(path)) as c:
        yield c


def expected(con, where: str = "TRUE", params: list | None = None) -> pa.Table:
    return con.sql(
        f"SELECT * FROM scored_explanations WHERE {where} ORDER BY {ORDER}", params=params or []
    ).to_arrow_table()


def read_back(path: Path, fmt: str, schema: pa.Schema) -> pa.Table:
    if fmt == "parquet":
        return pq.read_table(path)
    if fmt == "csv":
        # NULL is an empty unquoted field; an empty string is "".
        opts = pacsv.ConvertOptions(
            column_types={f.name: f.type for f in schema},
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )
        return pacsv.read_csv(path, convert_options=opts)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_round_trip_equals_the_view(con, tmp_path, fmt):
    out = tmp_path / f"scores.{fmt}"
    manifest = export_scored(con, out, fmt)
    want = expected(con)
    got = read_back(out, fmt, want.schema)
    assert want.num_rows == 72 and manifest.rows == 72
    assert got.column_names == want.column_names == list(manifest.columns)
    assert got.to_pylist() == want.to_pylist()


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv", "neuronpedia"])
def test_manifest_matches_the_file(con, tmp_path, fmt):
    out = tmp_path / "sub" / f"scores.{fmt}"  # the folder is created
    manifest = export_scored(con, out, fmt)
    on_disk = json.loads((tmp_path / "sub" / f"scores.{fmt}.manifest.json").read_text())
    assert on_disk == json.loads(manifest.model_dump_json())
    assert on_disk["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert on_disk["output"] == out.name and on_disk["format"] == fmt
    assert on_disk["run_ids"] == [RUN_ID]  # the unfinished run is not exported
    assert on_disk["prompt_shas"] == [PROMPT.sha]
    assert on_disk["neuroscribe_version"] and on_disk["created_at"]
    assert [p.name for p in out.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_refuses_existing_output_unless_forced(con, tmp_path):
    out = tmp_path / "scores.parquet"
    export_scored(con, out, "parquet")
    before = out.read_bytes()
    with pytest.raises(OutputExistsError, match="already exists.*force") as info:
        export_scored(con, out, "parquet", explainer=EXPLAINER_A)
    assert isinstance(info.value, FileExistsError) and isinstance(info.value, ExportError)
    assert out.read_bytes() == before
    m = export_scored(con, out, "parquet", explainer=EXPLAINER_A, force=True)
    assert pq.read_table(out).num_rows == m.rows < 72


def test_refuses_when_only_the_manifest_exists(con, tmp_path):
    out = tmp_path / "scores.csv"
    (tmp_path / "scores.csv.manifest.json").write_text("{}")
    with pytest.raises(OutputExistsError):
        export_scored(con, out, "csv")
    assert not out.exists()


def test_same_warehouse_exports_identical_bytes(con, tmp_path):
    a = export_scored(con, tmp_path / "a.jsonl", "jsonl")
    b = export_scored(con, tmp_path / "b.jsonl", "jsonl")
    assert a.sha256 == b.sha256


@pytest.mark.parametrize(
    ("filters", "where", "params"),
    [
        ({"subject": SUBJECT.name}, "subject = ?", [SUBJECT.name]),
        ({"subject": SUBJECT.subject_id}, "subject_id = ?", [SUBJECT.subject_id]),
        ({"site": "layers.0.resid"}, "site = ?", ["layers.0.resid"]),
        ({"explainer": CONTROL}, "explainer = ?", [CONTROL]),
        (
            {"simulator": SIM_FAKE, "score_kind": "corr_top_random"},
            "simulator = ? AND score_kind = ?",
            [SIM_FAKE, "corr_top_random"],
        ),
        ({"min_score": 0.5}, "score >= ?", [0.5]),
        ({"run_id": RUN_ID}, "run_id = ?", [RUN_ID]),
        ({"run_id": UNFINISHED_RUN_ID}, "FALSE", []),
        ({"subject": "x' OR '1'='1"}, "FALSE", []),  # a value is never SQL
    ],
)
def test_filters(con, tmp_path, filters, where, params):
    out = tmp_path / "f.parquet"
    manifest = export_scored(con, out, "parquet", **filters)
    want = expected(con, where, params)
    assert pq.read_table(out).to_pylist() == want.to_pylist()
    assert manifest.rows == want.num_rows
    assert {k: v for k, v in manifest.filters.items() if v is not None} == filters
    if manifest.rows == 0:
        assert manifest.run_ids == ()


def test_min_score_drops_undefined_scores(con, tmp_path):
    out = tmp_path / "f.jsonl"
    export_scored(con, out, "jsonl", min_score=-10.0)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(r["score"] is not None for r in rows)
    n_null = con.execute("SELECT count(*) FROM scored_explanations WHERE score IS NULL").fetchall()
    assert len(rows) == 72 - n_null[0][0]


def test_unknown_format_is_refused(con, tmp_path):
    with pytest.raises(ExportError, match="unknown export format 'xlsx'"):
        export_scored(con, tmp_path / "x.xlsx", "xlsx")  # type: ignore[arg-type]


def test_neuronpedia_lines(con, tmp_path):
    out = tmp_path / "np.jsonl"
    manifest = export_scored(con, out, "neuronpedia", site="layers.1.mlp")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    # Selected, non-control explanations only: two explainers on three units.
    assert manifest.rows == len(lines) == 6
    first = lines[0]
    assert set(first) == set(manifest.columns)
    assert first["modelId"] == "tiny-llama" and first["layer"] == "1-mlp"
    assert first["index"] == "0" and first["typeName"] == "neuroscribe"
    assert {ln["explanationModelName"] for ln in lines} == {EXPLAINER_A, "fake/explainer-b"}
    assert first["description"] == 'mentions of "fish" & <chips>'
    scores = {
        (s["explanationScoreModelName"], s["explanationScoreTypeName"]): s["value"]
        for s in first["scores"]
    }
    assert len(scores) == 6 and scores[("baseline/lexical", "corr_top_random")] == 0.8
    undefined = [s for ln in lines for s in ln["scores"] if s["value"] is None]
    assert undefined and all(s["reason"] for s in undefined)
    assert first["neuroscribe"]["run_ids"] == [RUN_ID]


def test_neuronpedia_overrides(con, tmp_path):
    out = tmp_path / "np.jsonl"
    export_scored(
        con,
        out,
        "neuronpedia",
        site="layers.0.resid",
        neuronpedia_model_id="tiny",
        neuronpedia_source_set="res-ns",
    )
    line = json.loads(out.read_text().splitlines()[0])
    assert (line["modelId"], line["layer"], line["index"]) == ("tiny", "0-res-ns", "5")


def test_neuronpedia_names():
    assert model_id("HuggingFaceTB/SmolLM2-135M-Instruct") == "smollm2-135m-instruct"
    assert layer_id("layers.15.mlp") == "15-mlp"
    assert layer_id("layers.3.resid") == "3-res"
    assert layer_id("layers.3.resid", sae_id="sae.safetensors@ab") == "3-res-sae"
    assert layer_id("layers.3.resid", source_set="res-jb") == "3-res-jb"
    with pytest.raises(ExportError, match="no Neuronpedia layer"):
        layer_id("blocks.3.hook_resid_post")


def test_readonly_connection_can_export(tmp_path):
    path = tmp_path / "w.duckdb"
    build_warehouse(path)
    with closing(duckdb.connect(str(path), read_only=True)) as ro:
        m = export_scored(ro, tmp_path / "out.csv", "csv")
    assert m.rows == 72


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_export_files_get_the_umask_default_permissions(con, tmp_path, umask, mode):
    """Not 0600, as a temporary file would give: others can read an export as they could any
    file the user writes."""
    old = os.umask(umask)
    try:
        out = tmp_path / "scores.jsonl"
        export_scored(con, out, "jsonl")
        export_scored(con, tmp_path / "forced.jsonl", "jsonl")
        export_scored(con, tmp_path / "forced.jsonl", "jsonl", force=True)
    finally:
        os.umask(old)
    for p in (out, manifest_path(out), tmp_path / "forced.jsonl"):
        assert stat.S_IMODE(p.stat().st_mode) == mode, p


def test_a_folder_as_output_is_named_without_suggesting_force(con, tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    for force in (False, True):
        with pytest.raises(ExportError, match="is a folder; give the export a file name") as e:
            export_scored(con, folder, "csv", force=force)
        assert "force" not in str(e.value)
    assert list(folder.iterdir()) == []
    out = tmp_path / "scores.csv"
    export_scored(con, out, "csv")
    with pytest.raises(OutputExistsError) as e:
        export_scored(con, out, "csv")
    assert "use --force to overwrite" in str(e.value) and "force=True" not in str(e.value)

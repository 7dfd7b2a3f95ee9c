"""The read-only questions of the CLI and flows (``warehouse.reads``), on the fixture warehouse
with agreements, LLM calls and failures added by hand."""

from __future__ import annotations

from contextlib import closing

import pytest
from warehouse_fixtures import (
    CONTROL,
    CORR,
    EXPLAINER_A,
    EXPLAINER_B,
    RUN_ID,
    SIM_FAKE,
    SIM_LEX,
    UNFINISHED_RUN_ID,
    build_warehouse,
)

from neuroscribe.config import RunConfig
from neuroscribe.llm.base import LLMCall
from neuroscribe.records import Agreement, Simulation
from neuroscribe.warehouse import WarehouseError, connect, open_readonly
from neuroscribe.warehouse.annotations import save_agreements, save_simulations
from neuroscribe.warehouse.calls import save_llm_calls
from neuroscribe.warehouse.reads import (
    agreement_summary,
    calls_summary,
    clarity_by_unit,
    control_comparisons,
    failures,
    query,
    run_table,
)
from neuroscribe.warehouse.runs import finish_run, start_run

LATER_RUN = "20250103T000000-finished"


def clarity(unit_key: str, value: float | None) -> Agreement:
    return Agreement(unit_key=unit_key, kind="clarity", annotators=(), value=value, n=3)


def call(annotator: str, purpose: str, n: int, **kw) -> LLMCall:
    fields = {"prompt_sha": None, "params": {}, "response": "r", "status": "ok"}
    return LLMCall(request_hash=f"h{n}", annotator=annotator, purpose=purpose, **{**fields, **kw})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    built = build_warehouse(tmp_path_factory.mktemp("wh") / "w.duckdb")
    u0, u1 = built.unit_keys[("layers.1.mlp", 0)], built.unit_keys[("layers.1.mlp", 1)]
    with closing(connect(built.path)) as con:
        save_agreements(con, RUN_ID, [clarity(u0, 0.4), clarity(u1, None)])
        save_agreements(
            con,
            RUN_ID,
            [Agreement(unit_key=u0, kind="alpha_simulators", annotators=(SIM_LEX, SIM_FAKE),
                       value=0.12345, n=40),
             Agreement(unit_key=u1, kind="alpha_simulators", annotators=(SIM_LEX, SIM_FAKE),
                       value=0.5, n=40)],
        )  # fmt: skip
        save_agreements(con, UNFINISHED_RUN_ID, [clarity(u1, 0.99)])  # never finished
        start_run(con, LATER_RUN, RunConfig())
        save_agreements(con, LATER_RUN, [clarity(u0, 0.6)])  # the latest finished clarity
        finish_run(con, LATER_RUN, "finished")
        save_llm_calls(
            con,
            RUN_ID,
            [
                call(EXPLAINER_A, "explain", 1, prompt_tokens=10, completion_tokens=5,
                     cost_usd=0.01),
                call(EXPLAINER_A, "explain", 2, prompt_tokens=20, completion_tokens=6,
                     cost_usd=0.02),
                call(EXPLAINER_A, "explain", 1, prompt_tokens=10, completion_tokens=5,
                     cost_usd=0.0, cache_hit=True),
                call(EXPLAINER_A, "explain", 3, status="failed", response=None,
                     error="timeout: no answer in 30 s"),
                call(SIM_FAKE, "simulate", 4, prompt_tokens=7, completion_tokens=1),
            ],
        )  # fmt: skip
        expl = next(e for e in built.explanations if e.unit_key == u0 and e.selected)
        save_simulations(
            con,
            RUN_ID,
            [Simulation(simulation_id="s-failed", explanation_id=expl.explanation_id,
                        simulator=SIM_FAKE, window_id="w", status="failed",
                        failure="unparseable")],
        )  # fmt: skip
    return built


@pytest.fixture
def con(built):
    with closing(open_readonly(built.path)) as c:
        yield c


def selected_ids(built) -> list[str]:
    return [e.explanation_id for e in built.explanations if e.selected]


def test_run_table(built, con):
    ghost = "ghost-of-the-unfinished-run"
    got = run_table(con, [*selected_ids(built), ghost], "corr_top_random")
    want = []
    for (site, index), per_explainer in sorted(CORR.items(), key=lambda kv: kv[0][1]):
        for explainer, (text, corr) in sorted(per_explainer.items()):
            for sim, value in sorted(corr.items()):
                want.append({
                    "site": site, "unit_index": index, "explainer": explainer, "explanation": text,
                    "simulator": sim, "score": value,
                    "ci_low": None if value is None else round(value - 0.1, 4),
                    "ci_high": None if value is None else round(value + 0.1, 4),
                    "score_undefined_reason": "constant simulation" if value is None else None,
                })  # fmt: skip
    assert got == want
    assert run_table(con, selected_ids(built), "no such kind") == []


def test_clarity_by_unit(built, con):
    # Unit 0: the later finished run's 0.6, not 0.4; unit 1: undefined (the unfinished run's
    # 0.99 does not count); units 2 and 5: never measured.
    assert clarity_by_unit(con, selected_ids(built)) == {
        ("layers.1.mlp", 0): 0.6, ("layers.1.mlp", 1): None,
    }
    only_unit_1 = [e for e in built.explanations if e.unit_key.endswith("/1")]
    assert clarity_by_unit(con, [e.explanation_id for e in only_unit_1]) == {
        ("layers.1.mlp", 1): None,
    }


def test_control_comparisons_need_the_baseline(built, con):
    # The fixture has the shuffled control but no n-gram baseline: no unit is compared.
    assert CONTROL in {e.explainer for e in built.explanations}
    assert control_comparisons(con, selected_ids(built), ["corr_top_random"]) == []


def test_calls_summary_and_failures(con):
    explain, simulate = calls_summary(con, RUN_ID)
    assert explain == {
        "annotator": EXPLAINER_A, "purpose": "explain", "calls": 3, "cached": 1, "failed": 1,
        "failure_kinds": "timeout", "tokens_in": 30, "tokens_out": 11,
        "cost_usd": pytest.approx(0.03),
    }  # fmt: skip
    assert simulate == {
        "annotator": SIM_FAKE, "purpose": "simulate", "calls": 1, "cached": 0, "failed": 0,
        "failure_kinds": None, "tokens_in": 7, "tokens_out": 1, "cost_usd": None,
    }  # fmt: skip
    assert calls_summary(con, LATER_RUN) == []
    assert failures(con, RUN_ID) == [
        {"what": "explanation", "who": EXPLAINER_B, "failure": "unparseable", "n": 1},
        {"what": "simulation", "who": SIM_FAKE, "failure": "unparseable", "n": 1},
    ]


def test_agreement_summary(con):
    assert agreement_summary(con, RUN_ID) == [
        {"kind": "alpha_simulators", "rows": 2, "mean_value": 0.312, "defined": 2},
        {"kind": "clarity", "rows": 2, "mean_value": 0.4, "defined": 1},
    ]
    assert agreement_summary(con, UNFINISHED_RUN_ID) == [
        {"kind": "clarity", "rows": 1, "mean_value": 0.99, "defined": 1}
    ]


def test_query(con):
    assert query(con, "SELECT run_id, status FROM runs ORDER BY run_id") == (
        ["run_id", "status"],
        [(RUN_ID, "finished"), (UNFINISHED_RUN_ID, "running"), (LATER_RUN, "finished")],
    )
    with pytest.raises(WarehouseError, match="opened read-only for queries; writes are refused"):
        query(con, "DELETE FROM runs")
    with pytest.raises(WarehouseError) as e:
        query(con, "SELEC 1")
    assert str(e.value).startswith("Parser Error") and "\n" not in str(e.value)


def _tree(folder) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("ATTACH '{dir}/other.duckdb' AS other", "cannot attach databases, read or write files"),
        ("ATTACH '{dir}/new.duckdb' AS new (READ_WRITE)", "cannot attach databases, read or write"),
        ("COPY runs TO '{dir}/runs.csv'", "cannot attach databases, read or write files"),
        ("EXPORT DATABASE '{dir}/dump'", "cannot attach databases, read or write files"),
        ("SELECT * FROM read_csv('{dir}/secret.txt')", "read or write files"),
        ("SELECT * FROM read_text('{dir}/secret.txt')", "read or write files"),
        ("SELECT * FROM read_parquet('{dir}/secret.txt')", "read or write files"),
        ("SELECT * FROM glob('{dir}/*')", "read or write files"),
        ("INSTALL httpfs", "install or load extensions"),
        ("LOAD httpfs", "install or load extensions"),
        ("SET threads = 1", "cannot change settings"),
        ("SET enable_external_access = true", "cannot change settings"),
        ("RESET lock_configuration", "cannot change settings"),
        ("PRAGMA threads = 1", "cannot change settings"),
    ],
)
def test_query_cannot_reach_files_extensions_or_settings(built, tmp_path, sql, why):
    """Each statement is refused with one line saying why, and neither the warehouse nor the
    file system changes (issue 14, point 3)."""
    (tmp_path / "secret.txt").write_text("a,b\n1,2\n")
    sql = sql.format(dir=tmp_path, wh=built.path)
    wh_before, files_before = built.path.read_bytes(), _tree(tmp_path)
    with closing(open_readonly(built.path)) as con:
        with pytest.raises(WarehouseError, match=why) as e:
            query(con, sql)
        assert "\n" not in str(e.value)
        assert query(con, "SELECT count(*) FROM runs")[1] == [(3,)]  # the connection still works
        assert query(con, "SELECT current_setting('enable_external_access')")[1] == [(False,)]
    assert built.path.read_bytes() == wh_before
    assert _tree(tmp_path) == files_before

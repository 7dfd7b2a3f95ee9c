"""The annotator_agreement view on a small hand-made warehouse, and the README's example query."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest

from neuroscribe.config import RunConfig
from neuroscribe.records import Agreement, Explanation, Subject, UnitExamples, UnitId, UnitStats
from neuroscribe.warehouse import connect
from neuroscribe.warehouse.annotations import save_agreements, save_explanations
from neuroscribe.warehouse.collection import save_collection
from neuroscribe.warehouse.runs import finish_run, start_run

SUBJECT = Subject(name="tiny", weights_hash="abc123", architecture="llama", n_layers=2)
UNITS = [
    UnitExamples(
        unit=UnitId(subject_id=SUBJECT.subject_id, site="layers.1.mlp", index=i),
        stats=UnitStats(n_tokens=9, max=3.0, mean=0.5, firing_rate=0.3, quantiles=(), dead=False),
        windows=(),
    )
    for i in range(2)
]
U0, U1 = (u.unit.key for u in UNITS)
X, Y = "local/x", "openai/m"  # X is also the name of a simulator below
SIM = "baseline/lexical"


def expl(eid: str, unit: str, explainer: str, text: str) -> Explanation:
    return Explanation(explanation_id=eid, unit_key=unit, explainer=explainer, text=text)


def agreement(unit: str | None, kind: str, annotators: tuple[str, ...], value: float) -> Agreement:
    return Agreement(unit_key=unit, kind=kind, annotators=annotators, value=value, n=5)


README = Path(__file__).resolve().parents[2] / "warehouse" / "README.md"


def readme_query() -> str:
    """The example query under the ``annotator_agreement`` heading of warehouse/README.md."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### `annotator_agreement`") :]
    return section[section.index("```sql") + len("```sql") : section.index("```\n", 10)]


@pytest.fixture
def con(warehouse_path):
    cfg = RunConfig()
    with closing(connect(warehouse_path)) as con:
        start_run(con, "r1", cfg)
        save_collection(con, "r1", SUBJECT, "c", [], UNITS)
        save_explanations(
            con,
            "r1",
            cfg.config_hash,
            [
                expl("e1", U0, X, "legal text and contracts"),
                expl("e2", U0, Y, "legal rulings of courts"),
                expl("e3", U1, X, "numbers"),
                expl("e4", U1, Y, "cats"),
                expl("e5", U0, "control/shuffled", "numbers"),
            ],
        )
        save_agreements(
            con,
            "r1",
            [
                agreement(U0, "explainer_text_similarity", (X, Y), 0.7),
                agreement(U0, "explainer_sim_corr", (X, Y), 0.6),
                agreement(U0, "alpha_simulators", (SIM, X), 0.5),
                agreement(U0, "clarity", (), 0.6),
                agreement(U1, "explainer_text_similarity", (X, Y), 0.1),
                agreement(None, "spearman_corr_top_random", (f"{X}|{SIM}", f"{Y}|{SIM}"), 0.9),
                agreement(None, "alpha_simulators_all_units", (SIM, X), 0.4),
            ],
        )
        finish_run(con, "r1", "finished")
        # A later finished run recomputes one statistic; a failed run's rows never show.
        start_run(con, "r2", cfg)
        for _ in range(2):  # agreements have no key: a repeated write duplicates, the view not
            save_agreements(
                con, "r2", [agreement(U0, "explainer_text_similarity", (X, Y), 0.75)]
            )
        finish_run(con, "r2", "finished")
        start_run(con, "r3", cfg)
        save_agreements(con, "r3", [agreement(U0, "explainer_sim_corr", (X, Y), -1.0)])
        finish_run(con, "r3", "failed")
        yield con


def rows(con, where: str) -> list[dict]:
    cur = con.execute(f"SELECT * FROM annotator_agreement WHERE {where} ORDER BY kind")  # noqa: S608
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_one_row_per_unit_kind_and_pair_with_unit_and_texts(con) -> None:
    got = rows(con, f"unit_key = '{U0}'")
    assert [(r["kind"], r["role"], r["value"], r["run_id"]) for r in got] == [
        ("alpha_simulators", "simulators", 0.5, "r1"),
        ("clarity", "unit", 0.6, "r1"),
        ("explainer_sim_corr", "explainers", 0.6, "r1"),  # r3 failed
        ("explainer_text_similarity", "explainers", 0.75, "r2"),  # newest finished run
    ]
    for r in got:
        assert (r["subject"], r["site"], r["unit_index"], r["unit_clarity"]) == (
            "tiny",
            "layers.1.mlp",
            0,
            0.6,
        )
    sim_corr = got[2]
    assert (sim_corr["annotator_a"], sim_corr["text_a"]) == (X, "legal text and contracts")
    assert (sim_corr["annotator_b"], sim_corr["text_b"]) == (Y, "legal rulings of courts")
    # A simulator that shares an explainer's name gets no explanation text.
    assert got[0]["annotator_b"] == X and got[0]["text_b"] is None


def test_statistics_over_all_units_have_no_unit(con) -> None:
    got = rows(con, "unit_key IS NULL")
    assert [(r["kind"], r["role"], r["site"], r["annotator_a"]) for r in got] == [
        ("alpha_simulators_all_units", "simulators", None, SIM),
        ("spearman_corr_top_random", "annotators", None, f"{X}|{SIM}"),
    ]


def test_readme_query_answers_do_two_annotators_agree(con) -> None:
    (answer,) = con.execute(readme_query()).fetchall()
    assert answer == (
        X,
        "legal text and contracts",
        Y,
        "legal rulings of courts",
        0.75,
        0.6,
        True,
        0.6,
    )

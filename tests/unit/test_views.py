"""The analysis views, checked against the hand-chosen scores of the fixture warehouse."""

import statistics
import sys
from contextlib import closing
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from warehouse_fixtures import (  # noqa: E402
    CONTROL,
    CORR,
    EXPLAINER_A,
    EXPLAINER_B,
    SIM_FAKE,
    SIM_LEX,
    build_warehouse,
)

from neuroscribe.registry import HEADLINE_SCORE  # noqa: E402
from neuroscribe.warehouse import connect, open_readonly  # noqa: E402
from neuroscribe.warehouse.db import sql_dir  # noqa: E402
from neuroscribe.warehouse.views import (  # noqa: E402
    View,
    ViewOrderError,
    parse_view,
    read_views,
    view_order,
)

VIEWS = ("best_explanations", "annotator_leaderboard", "disagreements", "score_distribution")


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    path = tmp_path_factory.mktemp("wh") / "w.duckdb"
    build_warehouse(path)
    with closing(connect(path)) as c:
        yield c


def rows(con, sql, params=()):
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_views_are_created_after_the_views_they_read():
    order = [v.name for v in view_order(read_views(sql_dir("views")))]
    for view in VIEWS:
        assert order.index(view) > order.index("scored_explanations")
    assert order.index("control_comparison") > order.index("control_comparison_units")
    for v in read_views(sql_dir("views")):
        assert all(order.index(d) < order.index(v.name) for d in v.depends), v.name


def _view(name: str, *depends: str, reads: str = "units") -> View:
    header = f"-- depends: {', '.join(depends)}\n" if depends else ""
    return parse_view(name, f"{header}CREATE OR REPLACE VIEW {name} AS SELECT * FROM {reads};")


def test_view_order_follows_declared_dependencies_then_names():
    views = [_view("a", "c", reads="c"), _view("b"), _view("c", "b", reads="b"), _view("d")]
    assert [v.name for v in view_order(views)] == ["b", "c", "a", "d"]


def test_view_order_errors_name_the_problem():
    with pytest.raises(ViewOrderError, match="view a depends on nope, which is not a view"):
        view_order([_view("a", "nope")])
    with pytest.raises(ViewOrderError, match="cycle: a -> b -> c -> a"):
        view_order([_view("a", "b", reads="b"), _view("b", "c", reads="c"), _view("c", "a")])
    with pytest.raises(ViewOrderError, match="view a reads b without declaring it"):
        view_order([_view("a", reads="b"), _view("b")])
    with pytest.raises(ViewOrderError, match="must create exactly the view x"):
        parse_view("x", "CREATE OR REPLACE VIEW y AS SELECT 1;")


def test_headline_score_macro_reads_on_a_read_only_connection(con, tmp_path):
    path = tmp_path / "w.duckdb"
    connect(path).close()
    with closing(open_readonly(path)) as ro:
        assert ro.execute("SELECT headline_score_kind()").fetchall() == [(HEADLINE_SCORE,)]


def test_views_exist_and_ignore_unfinished_runs(con):
    for view in VIEWS:
        got = con.execute(f"SELECT * FROM {view}").fetchall()
        assert got, view
        assert not any("fake/explainer-c" in map(str, r) for r in got), view


def test_best_explanations(con):
    best = {
        (r["site"], r["unit_index"], r["simulator"]): (r["explainer"], r["score"], r["candidates"])
        for r in rows(con, "SELECT * FROM best_explanations")
    }
    assert best == {
        # The best-of-n loser of unit 0 scores 0.95 but is not selected: A's 0.80 wins.
        ("layers.1.mlp", 0, SIM_LEX): (EXPLAINER_A, 0.80, 2),
        ("layers.1.mlp", 0, SIM_FAKE): (EXPLAINER_B, 0.75, 2),
        ("layers.1.mlp", 1, SIM_LEX): (EXPLAINER_B, 0.90, 2),
        ("layers.1.mlp", 1, SIM_FAKE): (EXPLAINER_B, 0.85, 2),
        # A's score is undefined under the lexical simulator: B is the only candidate.
        ("layers.1.mlp", 2, SIM_LEX): (EXPLAINER_B, 0.35, 1),
        # The control scores 0.40 here, above both, and is excluded.
        ("layers.1.mlp", 2, SIM_FAKE): (EXPLAINER_A, 0.30, 2),
        ("layers.0.resid", 5, SIM_LEX): (EXPLAINER_A, 0.50, 1),
        ("layers.0.resid", 5, SIM_FAKE): (EXPLAINER_A, 0.55, 1),
    }


def test_annotator_leaderboard(con):
    board = rows(con, "SELECT * FROM annotator_leaderboard WHERE score_kind = 'corr_top_random'")
    assert len(board) == 3 * 2  # three explainers (control included) x two simulators
    for r in board:
        values = [
            corr[r["simulator"]]
            for key, by_expl in CORR.items()
            for expl, (_, corr) in by_expl.items()
            if expl == r["explainer"]
        ]
        defined = [v for v in values if v is not None]
        assert r["units"] == r["explanations"] == len(values)
        assert r["defined"] == len(defined)
        assert r["mean_score"] == pytest.approx(statistics.mean(defined))
        assert r["median_score"] == pytest.approx(statistics.median(defined))
        assert r["defined_share"] == pytest.approx(len(defined) / len(values))
        assert r["is_control"] == (r["explainer"] == CONTROL)
    lex = [r for r in board if r["simulator"] == SIM_LEX]
    assert lex[0]["explainer"] == EXPLAINER_B  # ordered by mean, best first
    a_lex = next(r for r in lex if r["explainer"] == EXPLAINER_A)
    assert a_lex["defined_share"] == pytest.approx(0.75)


def test_disagreements(con):
    got = rows(con, "SELECT * FROM disagreements")
    spreads = [r["spread"] for r in got]
    assert spreads == sorted(spreads, reverse=True)
    top = got[0]
    assert (top["axis"], top["unit_index"], top["simulator"]) == ("explainers", 1, SIM_LEX)
    assert top["spread"] == pytest.approx(0.90 - 0.10)
    assert (top["highest"], top["lowest"]) == (EXPLAINER_B, EXPLAINER_A)
    assert top["explanation_id"] is None and top["annotators"] == 2
    by_expl = {(r["unit_index"], r["simulator"]) for r in got if r["axis"] == "explainers"}
    # Unit 5 has one explainer (B failed); unit 2 under lexical has one defined score.
    assert by_expl == {(0, SIM_LEX), (0, SIM_FAKE), (1, SIM_LEX), (1, SIM_FAKE), (2, SIM_FAKE)}
    sims = [r for r in got if r["axis"] == "simulators"]
    assert all(r["simulator"] is None and r["explanation_id"] for r in sims)
    # A and B on units 0 and 1, B on unit 2 (A's lexical score is undefined), A on unit 5.
    assert len(sims) == 6
    assert all(r["annotators"] == 2 for r in got)


def test_score_distribution(con):
    dist = rows(con, "SELECT * FROM score_distribution")
    r = next(
        d
        for d in dist
        if d["site"] == "layers.1.mlp"
        and d["explainer"] == EXPLAINER_A
        and d["simulator"] == SIM_LEX
        and d["score_kind"] == "corr_top_random"
    )
    assert (r["n"], r["n_defined"]) == (3, 2)  # 0.80, 0.10 and one undefined
    assert r["median"] == pytest.approx(0.45) and r["min"] == 0.10 and r["max"] == 0.80
    assert len(r["histogram"]) == 20 and sum(r["histogram"]) == 2
    assert r["histogram"][11] == 1 and r["histogram"][18] == 1  # [0.1, 0.2) and [0.8, 0.9)
    for d in dist:
        assert sum(d["histogram"]) == d["n_defined"]
    edge = rows(
        con,
        "SELECT * FROM score_distribution WHERE explainer = ? AND simulator = ?"
        " AND site = 'layers.1.mlp' AND score_kind = 'corr_top_random'",
        [CONTROL, SIM_FAKE],
    )[0]
    assert edge["histogram"][9] == 1 and edge["histogram"][10] == 1 and edge["histogram"][14] == 1

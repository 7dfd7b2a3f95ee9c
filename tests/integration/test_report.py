"""The HTML report: its structure (html.parser), its escaping, and how Chromium renders it."""

import shutil
import subprocess
import sys
from contextlib import closing
from html.parser import HTMLParser
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from comparison_warehouse import CHANGES, CKA, COMPARE_RUN_ID, OTHER, add_comparison  # noqa: E402
from warehouse_fixtures import (  # noqa: E402
    CONTROL,
    CORR,
    RUN_ID,
    SIMULATORS,
    UNFINISHED_RUN_ID,
    build_warehouse,
)

from neuroscribe.report import ReportError, write_report  # noqa: E402
from neuroscribe.report.data import ScoreRow, UnitView  # noqa: E402
from neuroscribe.report.render import score_table, token_row  # noqa: E402
from neuroscribe.warehouse import connect  # noqa: E402

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr"}
KNOWN = {
    "html",
    "head",
    "body",
    "title",
    "style",
    "meta",
    "header",
    "section",
    "article",
    "h1",
    "h2",
    "h3",
    "h4",
    "p",
    "div",
    "span",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "a",
    "b",
    "svg",
    "rect",
    "line",
    "text",
}
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)


class Page(HTMLParser):
    """Checks nesting and collects elements (tag, attrs, text inside)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict, list[str]]] = []
        self.elements: list[tuple[str, dict, str]] = []
        self.tags: set[str] = set()
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag not in VOID:
            self.stack.append((tag, dict(attrs), []))

    def handle_startendtag(self, tag, attrs):
        self.tags.add(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1][0] == tag, f"</{tag}> closes {self.stack[-1:]}"
        tag, attrs, text = self.stack.pop()
        joined = "".join(text)
        self.elements.append((tag, attrs, joined))
        if self.stack:
            self.stack[-1][2].append(joined)

    def handle_data(self, data):
        if self.stack:
            self.stack[-1][2].append(data)

    def find(self, tag: str, cls: str | None = None) -> list[tuple[dict, str]]:
        return [
            (a, t)
            for g, a, t in self.elements
            if g == tag and (cls is None or cls in (a.get("class") or "").split())
        ]


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert not page.stack, f"unclosed: {[t for t, _, _ in page.stack]}"
    return page


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("wh") / "w.duckdb"
    build_warehouse(path)
    return path


@pytest.fixture(scope="module")
def report(warehouse, tmp_path_factory):
    with closing(connect(warehouse)) as con:
        return write_report(con, tmp_path_factory.mktemp("report") / "site")


def test_structure_and_content(report):
    assert report.name == "index.html"
    page = parse(report)
    assert page.doctype.lower() == "doctype html"
    assert page.tags <= KNOWN, page.tags - KNOWN  # "<chips>" in tokens never became a tag
    assert "script" not in page.tags and "img" not in page.tags and "link" not in page.tags
    assert all(a.get("href", "#").startswith("#") for a, _ in page.find("a"))
    units = page.find("article", "unit")
    assert len(units) == len(CORR)
    text = " ".join(t for _, t in units)
    for by_explainer in CORR.values():
        for text_, _ in by_explainer.values():
            assert text_ in text  # escaped in the file, decoded by the parser
    assert "ghost text" not in report.read_text()  # the unfinished run stays out
    assert "any food" not in report.read_text()  # best-of-n losers stay out
    assert len(page.find("svg", "hist")) == 3 * len(SIMULATORS)


def test_held_out_windows_show_every_simulation(report):
    page = parse(report)
    units = {a["id"]: t for a, t in page.find("article", "unit")}
    assert len(units) == 4
    windows = page.find("div", "window")
    held_out = [(a, t) for a, t in windows if a["data-split"] in ("score_top", "score_random")]
    explain = [(a, t) for a, t in windows if a["data-split"] == "explain"]
    assert len(held_out) == 4 * 4 and len(explain) == 4 * 2
    rows = page.find("div", "row")
    labels = [t for a, t in page.find("span", "label")]
    assert len(rows) == len(labels)
    # Per held-out window: true + (explanations x simulators); three units have 3 selected
    # explanations, unit 5 has 2 (explainer B failed).
    sim_rows = sum(1 for t in labels if " \u00b7 " in t)
    assert sim_rows == (3 * 4 * 3 * 2) + (1 * 4 * 2 * 2)
    assert sum(1 for t in labels if t == "true") == 4 * 6
    cells = page.find("td", "best")
    assert len(cells) == 4 * len(SIMULATORS)  # one best per unit and simulator
    assert all(CONTROL not in t for _, t in page.find("td", "best"))


def test_text_is_escaped():
    unit = UnitView(
        "s/layers.0.mlp/1",
        "<b>subj</b>",
        "layers.0.mlp",
        1,
        None,
        1.0,
        0.1,
        [
            ScoreRow(
                "e1",
                'x/"y"',
                "</td><script>alert(1)</script>",
                "sim<1>",
                "corr_top_random",
                0.5,
                None,
                0.4,
                0.6,
                "r",
            ),
        ],
    )
    html = score_table(unit) + token_row("true", ["<script>", "&amp;", '"'], [1, 0, 2], 2, "true")
    assert "<script>" not in html and "</td><script>" not in html
    assert "&lt;/td&gt;&lt;script&gt;" in html and "&amp;amp;" in html and "&quot;" in html


def test_run_selection_and_limits(warehouse, tmp_path):
    with closing(connect(warehouse)) as con:
        one = parse(write_report(con, tmp_path / "one", RUN_ID, max_units=2))
        ghost = parse(write_report(con, tmp_path / "ghost", UNFINISHED_RUN_ID))
        with pytest.raises(ReportError, match="no run 'nope'"):
            write_report(con, tmp_path / "nope", "nope")
    assert len(one.find("article", "unit")) == 2
    assert "showing the first 2 of 4" in " ".join(t for _, t in one.find("header"))
    assert [a["id"] for a, _ in one.find("section", "run")] == [f"run-{RUN_ID}"]
    # An unfinished run's scores are not in scored_explanations: the report says so, no units.
    assert ghost.find("article", "unit") == []
    assert "No scores." in " ".join(t for _, t in ghost.find("section", "run"))


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    profile = tmp / "profile"
    profile.mkdir(exist_ok=True)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_renders_in_headless_chromium(report, tmp_path):
    dom = _chromium("--dump-dom", report.as_uri(), tmp=tmp_path).stdout
    assert "<article" in dom and 'class="unit"' in dom
    for (site, index), by_explainer in CORR.items():
        assert f"{site} \u00b7 unit {index}" in dom
        for text, _ in by_explainer.values():
            assert text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in dom
    assert "<script" not in dom
    shot = tmp_path / "report.png"
    _chromium("--window-size=1280,2000", f"--screenshot={shot}", report.as_uri(), tmp=tmp_path)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_window_labels_name_how_the_window_was_chosen():
    from neuroscribe.report.render import window_label

    assert [window_label(r) for r in (0, 3, -1, -2, -4)] == [
        "rank 0",
        "rank 3",
        "random",
        "quantile bin 0 from the top",
        "quantile bin 2 from the top",
    ]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """The report of the small warehouse with a finished comparison run added."""
    path = tmp_path_factory.mktemp("wh") / "w.duckdb"
    build_warehouse(path)
    add_comparison(path)
    with closing(connect(path)) as con:
        return write_report(con, tmp_path_factory.mktemp("report") / "site")


def test_no_comparison_no_compare_page(report):
    assert not (report.parent / "compare.html").exists()
    assert "compare.html" not in report.read_text()


def test_compare_page_holds_heatmap_universality_and_top_changes(compared):
    index = parse(compared)
    assert [a["href"] for a, _ in index.find("a") if not a["href"].startswith("#")] == [
        "compare.html"
    ]
    page = parse(compared.parent / "compare.html")
    assert page.doctype.lower() == "doctype html"
    assert page.tags <= KNOWN, page.tags - KNOWN
    assert "script" not in page.tags
    assert [a["href"] for a, _ in page.find("a")] == ["index.html"]
    (section,) = page.find("section", "comparison")
    assert section[0]["id"] == f"compare-{COMPARE_RUN_ID}"
    (heat,) = page.find("svg", "cka")
    labels = [t for g, _, t in page.elements if g == "text"]
    for value in CKA.values():
        assert f"{value:.2f}" in labels  # every cell labelled with its CKA
    assert "layers.0.resid" in heat[1] and "layers.1.mlp" in heat[1]
    assert {"0", "0.5", "1", "CKA"} <= set(labels)  # the colour scale
    assert len(page.find("rect", "matched")) == 2  # the same-site cells, outlined
    (table,) = page.find("table", "universality")
    assert "80%" in table[1] and "0.93" in table[1] and "0.81" in table[1]
    rows = [t for a, t in page.find("tr") if "change" in (a.get("class") or "")]
    assert len(rows) == len(CHANGES)
    for row, (change, _, site, unit, _) in zip(rows, CHANGES, strict=True):
        assert row.startswith(change) and site in row and str(unit) in row
        name = OTHER.name if change == "lost" else "tiny-llama"
        assert name in row
    assert "the word salt" in rows[1] and "ampersands" in rows[3] and "line breaks" in rows[5]


def test_heatmap_escapes_and_marks_missing_and_undefined_cells():
    from neuroscribe.report.compare import colour, heatmap_svg
    from neuroscribe.report.compare_data import CkaGrid

    grid = CkaGrid("a", "b", ("<s>", "layers.1.mlp"), ("<s>",),
                   {("<s>", "<s>"): None}, frozenset({("<s>", "<s>")}))
    svg = heatmap_svg(grid, "x & <y>")
    assert "<s>" not in svg and "&lt;s&gt;" in svg and "x &amp; &lt;y&gt;" in svg
    assert ">n/a</text>" in svg and 'class="missing"' in svg
    assert colour(0.0) == "rgb(255,255,255)" and colour(1.0) == "rgb(40,110,255)"
    assert colour(2.0) == colour(1.0) and colour(-1.0) == colour(0.0)


def test_compare_page_for_one_run(tmp_path):
    path = tmp_path / "w.duckdb"
    build_warehouse(path)
    add_comparison(path)
    with closing(connect(path)) as con:
        scores_only = write_report(con, tmp_path / "one", RUN_ID)
        compare_only = write_report(con, tmp_path / "cmp", COMPARE_RUN_ID)
    assert not (scores_only.parent / "compare.html").exists()
    assert (compare_only.parent / "compare.html").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_compare_page_renders_in_headless_chromium(compared, tmp_path):
    page = compared.parent / "compare.html"
    dom = _chromium("--dump-dom", page.as_uri(), tmp=tmp_path).stdout
    assert 'class="cka"' in dom and "the word salt" in dom and "<script" not in dom
    shot = tmp_path / "compare.png"
    _chromium("--window-size=1280,1200", f"--screenshot={shot}", page.as_uri(), tmp=tmp_path)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

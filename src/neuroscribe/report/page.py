"""The report page: one self-contained HTML document (inline CSS and SVG, no scripts)."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

from neuroscribe import __version__
from neuroscribe.report.data import ReportData, RunInfo, UnitView
from neuroscribe.report.render import (
    HEADLINE_SCORE,
    SHUFFLED_CONTROL,
    SPLIT_TITLES,
    esc,
    fmt,
    histogram_svg,
    score_table,
    window_block,
)

CSS = """
:root { --true: 255, 136, 0; --sim: 40, 110, 255; }
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 16px 48px; color: #1d1d1f; background: #fff; }
h1 { margin: 20px 0 4px; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f6; } tr.control td { color: #777; font-style: italic; }
td.best { background: #eaf7ea; } td.best b::after { content: " \\2605"; color: #2a8a2a; }
.ci, .others, .why, .wmeta, .meta { color: #666; font-size: 12px; }
.hists { display: flex; flex-wrap: wrap; gap: 12px; }
svg.hist { border: 1px solid #eee; background: #fafafa; }
svg.hist rect { fill: rgb(var(--sim)); } svg.hist line { stroke: #999; }
svg.hist text { font-size: 10px; fill: #444; }
article.unit { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; margin: 18px 0; }
.window { margin: 6px 0 10px; padding-left: 6px; border-left: 3px solid #eee; }
.row { display: flex; align-items: baseline; gap: 8px; }
.label { flex: 0 0 230px; font-size: 12px; color: #555; overflow: hidden;
         text-overflow: ellipsis; white-space: nowrap; }
.toks { font-family: ui-monospace, monospace; white-space: pre-wrap; }
.tok { border-radius: 2px; }
.tok.true { background: rgba(var(--true), var(--a)); }
.tok.sim { background: rgba(var(--sim), var(--a)); }
.legend .tok { padding: 0 6px; }
"""


def run_section(run: RunInfo, scores: dict[tuple[str, str], list[float | None]]) -> str:
    """A run's provenance, its leaderboard on the headline score kind, and histograms of it."""
    meta = (
        f'<p class="meta">status {esc(run.status)} \u00b7 config {esc(run.config_hash)} '
        f"\u00b7 started {esc(run.started_at)} \u00b7 finished {esc(run.finished_at or '-')} "
        f"\u00b7 neuroscribe {esc(run.version)}</p>"
    )
    rows, hists = [], []
    for (explainer, sim), values in sorted(scores.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        defined = [v for v in values if v is not None]
        mean = statistics.mean(defined) if defined else None
        median = statistics.median(defined) if defined else None
        control = ' class="control"' if explainer == SHUFFLED_CONTROL else ""
        rows.append(
            f"<tr{control}><td>{esc(explainer)}</td><td>{esc(sim)}</td><td>{len(values)}</td>"
            f"<td>{fmt(mean)}</td><td>{fmt(median)}</td>"
            f"<td>{len(defined) / len(values):.0%}</td></tr>"
        )
        hists.append(histogram_svg(defined, f"{explainer} \u00b7 {sim}"))
    table = (
        "<table><thead><tr><th>explainer</th><th>simulator</th><th>units</th><th>mean</th>"
        f"<th>median</th><th>defined</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows else "<p>No scores.</p>"
    )
    return (
        f'<section class="run" id="run-{esc(run.run_id)}"><h3>run {esc(run.run_id)}</h3>{meta}'
        f"<h4>{HEADLINE_SCORE} by explainer and simulator</h4>{table}"
        f'<div class="hists">{"".join(hists)}</div></section>'
    )


def unit_article(n: int, unit: UnitView) -> str:
    names = {s.explanation_id: s.explainer for s in unit.scores}
    sae = f" \u00b7 SAE {esc(unit.sae_id)}" if unit.sae_id else ""
    parts = [
        f'<article class="unit" id="unit-{n}"><h3>{esc(unit.subject)} \u00b7 {esc(unit.site)}'
        f"{sae} \u00b7 unit {unit.unit_index}</h3>"
        f'<p class="meta">{esc(unit.unit_key)} \u00b7 max activation '
        f"{fmt(unit.max_activation, signed=False)} \u00b7 firing rate {unit.firing_rate:.2%}</p>",
        score_table(unit),
    ]
    for split, title in SPLIT_TITLES.items():
        windows = [w for w in unit.windows if w.split == split]
        if windows:
            parts.append(f'<h4>{esc(title)}</h4><div class="split" data-split="{esc(split)}">')
            parts.extend(window_block(unit, w, names) for w in windows)
            parts.append("</div>")
    parts.append("</article>")
    return "".join(parts)


def unit_index(units: list[UnitView]) -> str:
    rows = []
    for n, u in enumerate(units):
        best = [s.value for s in u.scores if s.kind == HEADLINE_SCORE and s.value is not None
                and s.explainer != SHUFFLED_CONTROL]
        rows.append(
            f'<tr><td><a href="#unit-{n}">{esc(u.site)} / {u.unit_index}</a></td>'
            f"<td>{esc(u.subject)}</td><td>{fmt(max(best) if best else None)}</td></tr>"
        )
    return ("<table><thead><tr><th>unit</th><th>subject</th><th>best " + HEADLINE_SCORE
            + f"</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def document(title: str, body: str, extra_css: str = "") -> str:
    """A self-contained HTML document: the report's CSS (plus ``extra_css``) and ``body``."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}{extra_css}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def render_page(
    data: ReportData, title: str = "neuroscribe report", compare_page: str | None = None
) -> str:
    """The whole HTML document; ``compare_page``: the file name of the compare page to link
    from the header (None: no link)."""
    shown = len(data.units)
    cut = (f" (showing the first {shown} of {data.units_total})"
           if shown < data.units_total else "")
    legend = (
        '<p class="legend">Tokens shaded by <span class="tok true" style="--a:0.8">true '
        'activation</span> (relative to the unit\'s maximum over the corpus) and by <span '
        'class="tok sim" style="--a:0.8">simulated activation</span> (0\u201310 scale). '
        "Hover a token for its value. Scores: Pearson r on held-out top + random windows "
        "[95% bootstrap CI]; \u2605 marks the best explanation under each simulator.</p>"
    )
    compare_link = (
        f' \u00b7 <a href="{esc(compare_page)}">model comparisons</a>' if compare_page else ""
    )
    created = datetime.now(UTC).isoformat(timespec="seconds")
    body = [
        f"<header><h1>{esc(title)}</h1><p class=\"meta\">generated {created} by neuroscribe "
        f"{esc(__version__)} \u00b7 {len(data.runs)} run(s) \u00b7 {data.units_total} "
        f"unit(s){cut}{compare_link}</p>{legend}</header>",
        '<section id="runs"><h2>Runs</h2>',
        *(run_section(r, data.run_scores.get(r.run_id, {})) for r in data.runs),
        "</section>",
        f'<section id="units"><h2>Units</h2>{unit_index(data.units)}',
        *(unit_article(n, u) for n, u in enumerate(data.units)),
        "</section>",
    ]
    return document(title, "".join(body))

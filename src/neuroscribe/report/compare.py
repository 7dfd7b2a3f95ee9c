"""The report's compare page (``compare.html``): per finished comparison run, the layer x layer
CKA heatmap (inline SVG), the ``universality`` table and the top changed units of
``model_diff`` with their explanations. Every text from the warehouse passes through ``esc``."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from neuroscribe import __version__
from neuroscribe.report.compare_data import CkaGrid, ComparisonView
from neuroscribe.report.page import document
from neuroscribe.report.render import esc, fmt

CELL_W, CELL_H, LABEL_W, TOP = 88, 26, 112, 34
SCALE_STEPS = 10
LOW, HIGH = (255, 255, 255), (40, 110, 255)  # CKA 0 and 1; the report's simulated-blue

CSS = """
.heat { overflow-x: auto; margin: 8px 0 16px; }
svg.cka { background: #fff; } svg.cka text { font-size: 10px; fill: #333; }
svg.cka text.on-dark { fill: #fff; } svg.cka rect.matched { stroke: #1d1d1f; stroke-width: 2; }
svg.cka rect.missing { fill: #f0f0f0; } td.num { text-align: right; }
"""


def colour(value: float) -> str:
    """The heatmap's colour for a CKA in [0, 1] (clamped): white to blue."""
    t = max(0.0, min(1.0, value))
    r, g, b = (round(lo + (hi - lo) * t) for lo, hi in zip(LOW, HIGH, strict=True))
    return f"rgb({r},{g},{b})"


def _cell(x: float, y: float, site_a: str, site_b: str, value: float | None | str,
          matched: bool, minibatch: bool = False) -> str:
    cls = ' class="matched"' if matched else ""
    if value == "missing":
        fill, label, tip = "", "\u2013", "not accumulated (compare.cka_budget_mb)"
        cls = ' class="missing"'
    elif value is None or (isinstance(value, float) and not math.isfinite(value)):
        fill, label, tip = ' fill="#ddd"', "n/a", "undefined: a side is constant"
    else:
        v = float(value)
        fill, label, tip = f' fill="{colour(v)}"', f"{v:.2f}", f"CKA {v:.3f}"
        if minibatch:
            tip += " (minibatch estimator: over compare.cka_budget_mb)"
    dark = ' class="on-dark"' if isinstance(value, float) and value > 0.6 else ""
    return (
        f'<rect x="{x}" y="{y}" width="{CELL_W - 2}" height="{CELL_H - 2}"{fill}{cls}>'
        f"<title>{esc(site_a)} \u00d7 {esc(site_b)}: {esc(tip)}</title></rect>"
        f'<text x="{x + (CELL_W - 2) / 2}" y="{y + CELL_H / 2 + 2}" text-anchor="middle"'
        f"{dark}>{label}</text>"
    )


def heatmap_svg(grid: CkaGrid, title: str) -> str:
    """Rows: A's sites; columns: B's sites; each cell coloured and labelled with its CKA, the
    matched (same-site) cells outlined; a colour scale from 0 to 1 underneath."""
    step_w = 16
    width = LABEL_W + max(CELL_W * len(grid.sites_b), SCALE_STEPS * step_w + 8) + 8
    grid_bottom = TOP + CELL_H * len(grid.sites_a)
    height = grid_bottom + 44
    parts = [f'<text x="2" y="12">{esc(title)}</text>']
    for j, site_b in enumerate(grid.sites_b):
        parts.append(f'<text x="{LABEL_W + j * CELL_W + (CELL_W - 2) / 2}" y="{TOP - 6}" '
                     f'text-anchor="middle">{esc(site_b)}</text>')
    for i, site_a in enumerate(grid.sites_a):
        y = TOP + i * CELL_H
        parts.append(f'<text x="{LABEL_W - 6}" y="{y + CELL_H / 2 + 2}" text-anchor="end">'
                     f"{esc(site_a)}</text>")
        for j, site_b in enumerate(grid.sites_b):
            key = (site_a, site_b)
            value: float | None | str = grid.values.get(key, "missing")
            parts.append(_cell(LABEL_W + j * CELL_W, y, site_a, site_b, value,
                               key in grid.matched, key in grid.minibatch))
    y0 = grid_bottom + 12
    for k in range(SCALE_STEPS):
        lo = k / SCALE_STEPS
        parts.append(
            f'<rect x="{LABEL_W + k * step_w}" y="{y0}" width="{step_w}" height="10" '
            f'fill="{colour(lo + 0.5 / SCALE_STEPS)}"><title>CKA {lo:.1f}\u2013'
            f"{lo + 1 / SCALE_STEPS:.1f}</title></rect>"
        )
    for tick in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{LABEL_W + tick * SCALE_STEPS * step_w}" y="{y0 + 24}" '
                     f'text-anchor="middle">{tick:g}</text>')
    parts.append(f'<text x="{LABEL_W - 6}" y="{y0 + 9}" text-anchor="end">CKA</text>')
    return (
        f'<svg class="cka" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>{esc(title)}</title>'
        f'{"".join(parts)}</svg>'
    )


def _share(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.0%}"


def universality_table(rows: list[dict[str, Any]], subjects: dict[str, str]) -> str:
    """One row per matched site pair: widths, live units, shares matched, mean r, CKA."""
    if not rows:
        return "<p>No matched site pairs.</p>"
    head = ("<tr><th>subject A</th><th>subject B</th><th>site</th><th>units A / B</th>"
            "<th>live A / B</th><th>A matched</th><th>B matched</th><th>one-to-one</th>"
            "<th>mean r A</th><th>mean r B</th><th>CKA</th><th>tokens</th></tr>")
    body = "".join(
        f"<tr><td>{esc(subjects.get(r['subject_a_id'], r['subject_a_id']))}</td>"
        f"<td>{esc(subjects.get(r['subject_b_id'], r['subject_b_id']))}</td>"
        f"<td>{esc(r['site_a'])}</td><td class=\"num\">{r['n_a']} / {r['n_b']}</td>"
        f"<td class=\"num\">{r['live_a']} / {r['live_b']}</td>"
        f"<td class=\"num\">{_share(r['share_a_matched'])}</td>"
        f"<td class=\"num\">{_share(r['share_b_matched'])}</td>"
        f"<td class=\"num\">{_share(r['share_one_to_one'])}</td>"
        f"<td class=\"num\">{fmt(r['mean_r_a'])}</td><td class=\"num\">{fmt(r['mean_r_b'])}</td>"
        f"<td class=\"num\">{fmt(r['cka'], signed=False)}</td>"
        f"<td class=\"num\">{r['n_tokens']}</td></tr>"
        for r in rows
    )
    threshold = rows[0]["threshold"]
    return (f'<table class="universality"><thead>{head}</thead><tbody>{body}</tbody></table>'
            f'<p class="meta">matched: best partner r \u2265 {esc(threshold)}</p>')


def changes_table(view: ComparisonView) -> str:
    """The top rows of ``model_diff``: new units of B and lost units of A, with explanations."""
    if not view.changes:
        return "<p>No unit without a partner: nothing new, nothing lost.</p>"
    names = view.subjects
    body = "".join(
        f'<tr class="change {esc(c["change"])}"><td>{esc(c["change"])}</td>'
        f"<td>{esc(names.get(c['subject_id'], c['subject_id']))}</td><td>{esc(c['site'])}</td>"
        f"<td class=\"num\">{esc(c['unit_index'])}</td>"
        f"<td class=\"num\">{fmt(c['partner_r'])}</td>"
        f"<td class=\"num\">{fmt(c['change_size'], signed=False)}</td>"
        f"<td class=\"expl\">{esc(c['explanation'] or '')}</td>"
        f"<td>{esc(c['explainer'] or '')}</td>"
        f"<td class=\"num\">{fmt(c['explanation_score']) if c['explanation'] else ''}</td></tr>"
        for c in view.changes
    )
    shown = len(view.changes)
    cut = f" (the first {shown} of {view.changes_total})" if shown < view.changes_total else ""
    return (
        f"<p class=\"meta\">largest change (1 \u2212 best-partner r) first{cut}</p>"
        '<table class="changes"><thead><tr><th>change</th><th>subject</th><th>site</th>'
        "<th>unit</th><th>partner r</th><th>1 \u2212 r</th><th>explanation</th><th>explainer</th>"
        f"<th>score</th></tr></thead><tbody>{body}</tbody></table>"
    )


def comparison_section(view: ComparisonView) -> str:
    """One comparison run: provenance, heatmaps, universality, top changes."""
    names = view.subjects
    subjects = " \u00b7 ".join(esc(n) for n in sorted(set(names.values())))
    meta = (
        f'<p class="meta">{subjects} \u00b7 config {esc(view.config_hash)} \u00b7 started '
        f"{esc(view.started_at)} \u00b7 finished {esc(view.finished_at)} \u00b7 neuroscribe "
        f"{esc(view.version)}</p>"
    )
    heat = "".join(
        '<div class="heat">'
        + heatmap_svg(g, f"{names.get(g.subject_a_id, g.subject_a_id)} (rows) vs "
                         f"{names.get(g.subject_b_id, g.subject_b_id)} (columns)")
        + "</div>"
        for g in view.grids
    )
    return (
        f'<section class="comparison" id="compare-{esc(view.run_id)}">'
        f"<h2>comparison {esc(view.run_id)}</h2>{meta}<h3>Linear CKA, layer \u00d7 layer</h3>"
        f"{heat}<h3>Universality</h3>{universality_table(view.universality, names)}"
        f"<h3>Top changed units (model_diff)</h3>{changes_table(view)}</section>"
    )


def render_compare_page(views: list[ComparisonView], title: str = "neuroscribe comparisons"
                        ) -> str:
    """The whole compare.html document."""
    created = datetime.now(UTC).isoformat(timespec="seconds")
    header = (
        f"<header><h1>{esc(title)}</h1><p class=\"meta\">generated {created} by neuroscribe "
        f"{esc(__version__)} \u00b7 {len(views)} comparison run(s) \u00b7 "
        '<a href="index.html">back to the report</a></p></header>'
    )
    return document(title, header + "".join(comparison_section(v) for v in views), CSS)

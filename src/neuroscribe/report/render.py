"""HTML pieces of the report: shaded tokens, score tables and SVG histograms.

Every piece of text from the warehouse passes through ``esc`` (html.escape with quotes), so a
token such as ``<script>`` or an explanation with ``&`` or quotes shows as written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from neuroscribe.registry import HEADLINE_SCORE
from neuroscribe.report.data import ScoreRow, UnitView, WindowView
from neuroscribe.score.controls import SHUFFLED_CONTROL

BINS = 20  # histogram buckets of width 0.1 on [-1, 1], as in the score_distribution view
SPLIT_TITLES = {
    "explain": "shown to the explainer (top windows)",
    "score_top": "held out: top windows",
    "score_random": "held out: random windows",
    "score_ood": "held out: second corpus",
}


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def fmt(value: float | None, signed: bool = True) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def show_token(token: str) -> str:
    """Escaped token with line breaks and tabs made visible."""
    return esc(token.replace("\n", "\u21b5").replace("\t", "\u2192"))


def token_row(label: str, tokens: Sequence[str], values: Sequence[float], scale: float,
              css: str) -> str:
    """One line of tokens, each shaded by value / scale (clamped to [0, 1])."""
    spans = []
    for i, tok in enumerate(tokens):
        v = values[i] if i < len(values) else 0.0
        alpha = 0.0 if scale <= 0 else max(0.0, min(1.0, v / scale))
        spans.append(
            f'<span class="tok {css}" style="--a:{alpha:.3f}" title="{v:.2f}">'
            f"{show_token(tok)}</span>"
        )
    return (f'<div class="row"><span class="label">{esc(label)}</span>'
            f'<span class="toks">{"".join(spans)}</span></div>')


def window_block(unit: UnitView, w: WindowView, names: dict[str, str]) -> str:
    """A window: true activations, then (held-out windows) each simulator's predictions."""
    scale = unit.max_activation or max(w.activations, default=0.0)
    parts = [token_row("true", w.tokens, w.activations, scale, "true")]
    shown = [(names[eid], sim, preds) for (eid, sim), preds in w.simulated.items() if eid in names]
    controls_last = sorted(shown, key=lambda t: (t[0] == SHUFFLED_CONTROL, t[0], t[1]))
    for explainer, sim, preds in controls_last:
        parts.append(token_row(f"{explainer} \u00b7 {sim}", w.tokens, preds, 10.0, "sim"))
    rank = window_label(w.rank)
    return (f'<div class="window" data-split="{esc(w.split)}"><div class="wmeta">{esc(rank)} '
            f"\u00b7 {esc(w.window_id)}</div>{''.join(parts)}</div>")


def window_label(rank: int) -> str:
    """How a window was chosen: top rank r (>= 0), random (-1), or activation bin b below the top
    (-2 is the highest bin; see neuroscribe/collect/quantile.py)."""
    if rank >= 0:
        return f"rank {rank}"
    return "random" if rank == -1 else f"quantile bin {-rank - 2} from the top"


def score_cell(rows: list[ScoreRow]) -> str:
    by_kind = {r.kind: r for r in rows}
    main = by_kind.get(HEADLINE_SCORE)
    if main is None:
        head = "<b>n/a</b>"
    elif main.value is None:
        head = f'<b>n/a</b> <span class="why">({esc(main.reason or "undefined")})</span>'
    else:
        ci = (f' <span class="ci">[{fmt(main.ci_low)}, {fmt(main.ci_high)}]</span>'
              if main.ci_low is not None and main.ci_high is not None else "")
        head = f"<b>{fmt(main.value)}</b>{ci}"
    others = " \u00b7 ".join(f"{esc(k)} {fmt(r.value)}" for k, r in sorted(by_kind.items())
                             if k != HEADLINE_SCORE)
    return f'{head}<div class="others">{others}</div>'


def score_table(unit: UnitView) -> str:
    """Explanations (rows) by simulators (columns); the best non-control per simulator starred."""
    sims = sorted({s.simulator for s in unit.scores})
    expls: dict[str, tuple[str, str]] = {}
    cells: dict[tuple[str, str], list[ScoreRow]] = {}
    for s in unit.scores:
        expls.setdefault(s.explanation_id, (s.explainer, s.explanation))
        cells.setdefault((s.explanation_id, s.simulator), []).append(s)
    best: dict[str, str] = {}
    for sim in sims:
        cands = [(r.value, eid) for (eid, s), rs in cells.items() if s == sim for r in rs
                 if r.kind == HEADLINE_SCORE and r.value is not None
                 and expls[eid][0] != SHUFFLED_CONTROL]
        if cands:
            best[sim] = max(cands)[1]
    head = "".join(f"<th>{esc(s)}</th>" for s in sims)
    body = []
    in_order = sorted(expls.items(), key=lambda kv: (kv[1][0] == SHUFFLED_CONTROL, kv[1][0], kv[0]))
    for eid, (explainer, text) in in_order:
        tds = []
        for sim in sims:
            star = ' class="best" title="best explanation under this simulator"' \
                if best.get(sim) == eid else ""
            tds.append(f"<td{star}>{score_cell(cells.get((eid, sim), []))}</td>")
        control = ' class="control"' if explainer == SHUFFLED_CONTROL else ""
        body.append(f'<tr{control}><td class="explainer">{esc(explainer)}</td>'
                    f'<td class="expl">{esc(text)}</td>{"".join(tds)}</tr>')
    return (f'<table class="scores"><thead><tr><th>explainer</th><th>explanation</th>{head}'
            f'</tr></thead><tbody>{"".join(body)}</tbody></table>')


def histogram_svg(values: Sequence[float], title: str, width: int = 260,
                  height: int = 90) -> str:
    """Bars of the defined values in 20 buckets on [-1, 1]; axis ticks at -1, 0, 1."""
    counts = [0] * BINS
    for v in values:
        counts[min(BINS - 1, max(0, math.floor((v + 1.0) * BINS / 2)))] += 1
    top = max(counts) or 1
    pad, plot_h = 14, height - 28
    bar_w = (width - 2 * pad) / BINS
    bars = []
    for i, c in enumerate(counts):
        h = plot_h * c / top
        lo = -1 + i * 2 / BINS
        bars.append(
            f'<rect x="{pad + i * bar_w:.1f}" y="{14 + plot_h - h:.1f}" width="{bar_w - 1:.1f}" '
            f'height="{h:.1f}"><title>[{lo:+.1f}, {lo + 0.1:+.1f}): {c}</title></rect>'
        )
    base = 14 + plot_h
    ticks = "".join(
        f'<text x="{pad + (x + 1) / 2 * (width - 2 * pad):.1f}" y="{height - 2}" '
        f'text-anchor="middle">{x:+d}</text>' for x in (-1, 0, 1)
    )
    return (
        f'<svg class="hist" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">'
        f"<title>{esc(title)}</title>"
        f'<text x="{pad}" y="10" class="htitle">{esc(title)} (n={len(values)})</text>'
        f'{"".join(bars)}<line x1="{pad}" y1="{base}" x2="{width - pad}" y2="{base}"/>'
        f"{ticks}</svg>"
    )

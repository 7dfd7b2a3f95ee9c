"""Pure rendering of a unit's explain windows for the explainer prompts.

Two formats (``ExplainConfig.format``):

- ``highlight`` (after delphi): one line per window, the runs of tokens at or above
  ``HIGHLIGHT_FRACTION`` of that window's maximum wrapped in ``<<`` ``>>``.
- ``table`` (after OpenAI): ``<start>`` / ``token<TAB>0-10`` lines / ``<end>`` blocks, with
  ``norm(a) = min(10, floor(10 * relu(a) / max))`` and ``max`` over all windows shown.

Both show a crop of each window: from ``CONTEXT_BEFORE`` tokens before its first firing token to
``CONTEXT_AFTER`` after its last, because small explainers did better on short crops than on
whole windows (DESIGN.md, "Embedded defaults").
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence, Set

HIGHLIGHT_FRACTION = 0.3
CONTEXT_BEFORE = 8
CONTEXT_AFTER = 3
_WS = re.compile(r"\s+")


def firing_positions(
    activations: Sequence[float], fraction: float = HIGHLIGHT_FRACTION
) -> list[int]:
    """Positions at or above ``fraction`` of the window's maximum; none when the max is <= 0."""
    top = max(activations, default=0.0)
    if top <= 0:
        return []
    return [i for i, a in enumerate(activations) if a >= fraction * top]


def crop(n_tokens: int, firing: Sequence[int]) -> range:
    """The token range shown for a window with these firing positions."""
    if not firing:
        return range(0)
    return range(max(0, firing[0] - CONTEXT_BEFORE), min(n_tokens, firing[-1] + CONTEXT_AFTER + 1))


def display_pieces(tokens: Sequence[str]) -> list[str]:
    """Each token as it should appear in running text.

    Tokens decoded one by one keep their own leading spaces (BPE, SentencePiece ``▁``); WordPiece
    tokens carry none, so they are joined with spaces except ``##`` continuations.
    """
    wordpiece = not any(t[:1].isspace() or t.startswith("▁") for t in tokens)
    pieces = []
    for i, t in enumerate(tokens):
        t = t.replace("▁", " ")
        if wordpiece:
            t = t[2:] if t.startswith("##") else (" " + t if i else t)
        pieces.append(t)
    return pieces


def highlight_line(tokens: Sequence[str], activations: Sequence[float]) -> str | None:
    """One window as a single line with its firing runs marked; None if it does not fire."""
    firing = firing_positions(activations)
    shown = crop(len(tokens), firing)
    if not shown:
        return None
    return mark_runs(display_pieces(tokens), shown, set(firing))


def mark_runs(pieces: Sequence[str], shown: Iterable[int], marks: Set[int]) -> str:
    """The pieces at positions ``shown`` as one line, each run of positions in ``marks`` wrapped
    in << >> (a leading space stays outside the marks; newlines and tabs become spaces, since
    they would break the one-line-per-example layout)."""
    out: list[str] = []
    open_run = False
    for i in shown:
        piece = _WS.sub(" ", pieces[i])
        if i in marks and not open_run:
            stripped = piece.lstrip(" ")
            out.append(piece[: len(piece) - len(stripped)] + "<<")
            piece, open_run = stripped, True
        elif i not in marks and open_run:
            out.append(">>")
            open_run = False
        out.append(piece)
    if open_run:
        out.append(">>")
    return _WS.sub(" ", "".join(out)).strip()


def render_highlight(windows: Sequence[tuple[Sequence[str], Sequence[float]]]) -> str:
    """Numbered highlighted lines, one per firing window."""
    lines = [line for toks, acts in windows if (line := highlight_line(toks, acts))]
    return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1))


def normalize(activations: Sequence[float], max_activation: float) -> list[int]:
    """OpenAI's 0-10 scale: ``min(10, floor(10 * relu(a) / max))``; all zeros if max <= 0."""
    if max_activation <= 0:
        return [0] * len(activations)
    return [min(10, math.floor(10 * max(a, 0.0) / max_activation)) for a in activations]


def escape_token(token: str) -> str:
    """A token that cannot break a one-token-per-line table (tabs, newlines escaped)."""
    return (
        token.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def render_table(windows: Sequence[tuple[Sequence[str], Sequence[float]]]) -> str:
    """``<start>``/``<end>`` blocks of ``token<TAB>norm`` lines for the firing windows."""
    top = max((max(a, default=0.0) for _, a in windows), default=0.0)
    blocks = []
    for toks, acts in windows:
        shown = crop(len(toks), firing_positions(acts))
        if not shown:
            continue
        norm = normalize(acts, top)
        rows = [f"{escape_token(toks[i])}\t{norm[i]}" for i in shown]
        blocks.append("<start>\n" + "\n".join(rows) + "\n<end>")
    return "\n".join(blocks)

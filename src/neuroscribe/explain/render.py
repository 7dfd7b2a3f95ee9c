"""Pure rendering of a unit's explain windows for the explainer prompts.

Two formats (``ExplainConfig.format``):

- ``highlight`` (after delphi): one line per window, the runs of tokens at or above
  ``HIGHLIGHT_FRACTION`` of that window's maximum wrapped in ``<<`` ``>>``; angle brackets of the
  corpus text that could pass for a mark are shown as ``‹`` ``›`` (``escape_marks``), so a corpus
  cannot forge a mark (the fuzz prompt's marked text is made the same way).
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
_ANGLE_RUN = re.compile(r"[<>]{2,}")
_GUILLEMETS = str.maketrans("<>", "‹›")


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
    they would break the one-line-per-example layout). The text itself passes
    ``escape_marks``, so only these wraps read as marks."""
    segments: list[tuple[bool, str]] = []  # runs of pieces that are all marked or all not
    for i in shown:
        piece, marked = _WS.sub(" ", pieces[i]), i in marks
        if segments and segments[-1][0] == marked:
            segments[-1] = (marked, segments[-1][1] + piece)
        else:
            segments.append((marked, piece))
    out: list[str] = []
    for marked, text in segments:
        if marked:
            stripped = text.lstrip(" ")
            out.append(text[: len(text) - len(stripped)] + "<<" + escape_marks(stripped) + ">>")
        else:
            out.append(escape_marks(text))
    return _WS.sub(" ", "".join(out)).strip()


def escape_marks(text: str) -> str:
    """Corpus text that cannot forge a firing mark: every ``<`` or ``>`` in a run of two or more
    becomes ``‹`` or ``›`` (so ``<<x>>`` reads ``‹‹x››`` and a doctest's ``>>>`` reads ``›››``),
    and so does one at either end of the text, which would touch a real mark (``a<`` before
    ``<<b>>``). A lone ``<`` or ``>`` inside the text (``a < b``, ``x -> y``) stays as it is.
    One way only: the prompts say that only ``<<`` and ``>>`` are marks."""
    text = _ANGLE_RUN.sub(lambda m: m[0].translate(_GUILLEMETS), text)
    if text[:1] in ("<", ">"):
        text = text[0].translate(_GUILLEMETS) + text[1:]
    if text[-1:] in ("<", ">"):
        text = text[:-1] + text[-1].translate(_GUILLEMETS)
    return text


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

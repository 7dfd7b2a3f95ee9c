"""Pure parsing of an explainer's completion into one clean sentence, or a failure kind."""

from __future__ import annotations

import re

MAX_CHARS = 200
"""Longer answers are cut at a word boundary: an explanation is one sentence."""

_PREFIXES = re.compile(
    r"^\s*(?:\[?explanation\]?|answer|summary|description|output|response)\s*[:\-–]\s*",
    re.IGNORECASE,
)
_OPENAI_PREFIX = re.compile(
    r"^\s*(?:explanation of neuron behavior:\s*)?the main thing this neuron does is find\s*",
    re.IGNORECASE,
)
_LIST_MARK = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_QUOTES = "\"'`“”‘’«»"
_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)[.!?](?=\s|$)")


class ParseFailure(ValueError):
    """The completion holds no usable explanation; ``kind`` is stored as the failure."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


def parse_explanation(completion: str) -> str:
    """The first sentence of the completion, without labels, list marks, wrapping quotes and
    trailing junk. Raises ``ParseFailure("empty")`` or ``ParseFailure("unparseable")``."""
    lines = [ln.strip() for ln in completion.replace("\r", "\n").split("\n")]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise ParseFailure("empty")
    text = lines[0]
    for _ in range(3):  # labels can stack: "1. Explanation: ..."
        before = text
        text = _LIST_MARK.sub("", text)
        text = _PREFIXES.sub("", text)
        text = _OPENAI_PREFIX.sub("", text)
        text = _strip_wrapping_quotes(text)
        if text == before:
            break
    if m := _SENTENCE_END.search(text):
        text = text[: m.start()]
    text = text.strip().rstrip(" ,;:-–")
    text = _strip_wrapping_quotes(text)
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS].rsplit(" ", 1)[0].rstrip(" ,;:-–")
    if not text:
        raise ParseFailure("empty")
    if sum(c.isalpha() for c in text) < 3 or "<<" in text or ">>" in text or "\t" in text:
        # No words, or the model echoed the examples instead of describing them.
        raise ParseFailure("unparseable", text[:80])
    return text


def _strip_wrapping_quotes(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        # Only when the quote pair wraps everything, not '"red" and "blue"'.
        inner = text[1:-1]
        if any(q in inner for q in _QUOTES if q in (text[0], text[-1])):
            break
        text = inner.strip()
    quotes = [i for i, c in enumerate(text) if c in _QUOTES]
    if len(quotes) == 1 and quotes[0] in (0, len(text) - 1):  # an unmatched quote at one end
        text = (text[1:] if quotes[0] == 0 else text[:-1]).strip()
    return text

"""Choosing what to plant: trigger words drawn from the corpus, and concepts of related words.

Candidate words are those the corpus windows hold as whole-word tokens: a single token whose
text is the word (any case; for byte-level BPE tokenizers, only the word-start form with its
leading space, so a piece inside a longer word does not make a word). A planted word's trigger is
then every *spelling* of it in the vocabulary (``spellings``): every single token whose text, as
annotators are shown it, is the word once leading space markers and case are dropped (" value",
"value", " Value", "VALUE", "##value"), which is what a reader of tokens, and the lexical
simulator, takes for the word. A word is eligible when it is at least 3 letters, not a stop word,
and neither rare (in fewer windows than the pipeline needs top windows) nor common (in more than
``MAX_WINDOW_SHARE`` of the windows), counting windows that hold any of its spellings.

A concept is 3-5 related words; its trigger is the union of its words' tokens. Built-in
concepts (``BUILTIN_CONCEPTS``) suit the embedded corpus (Python documentation); a user gives
their own as ``name=word,word,word``.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from neuroscribe.errors import BadInput
from neuroscribe.explain.ngram import term_key

MAX_WINDOW_SHARE = 0.15
"""A word in more than this share of the windows counts as common, whatever the stop list says."""

_STOP_TEXT = """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing done down during each either else
    even every few for from further get gets given had has have having he her here hers him his how
    however if in into is it its itself just least less like made make many may me might more most
    much must my no nor not now of off on once one only or other otherwise our out over own per
    same see set she should since so some such than that the their them then there these they
    this those through thus to too two under until up upon use used uses using very via was way
    we were what when where whether which while who whom whose why will with within without would
    yet you your
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())
"""English function words and the commonest verbs: never triggers (nothing to explain)."""

BUILTIN_CONCEPTS: dict[str, tuple[str, ...]] = {
    "files": ("file", "directory", "path", "folder", "filename"),
    "errors": ("error", "exception", "warning", "raised", "failure"),
    "time": ("time", "date", "seconds", "timezone", "clock"),
    "numbers": ("integer", "float", "decimal", "number", "fraction"),
    "text": ("string", "text", "character", "unicode", "bytes"),
    "network": ("socket", "server", "host", "connection", "address"),
    "containers": ("list", "dictionary", "tuple", "sequence", "mapping"),
    "processes": ("process", "thread", "signal", "subprocess", "child"),
    "encoding": ("encoding", "decode", "encode", "codec", "ascii"),
    "logging": ("logger", "logging", "handler", "log", "message"),
    "mathematics": ("sqrt", "logarithm", "sine", "cosine", "exponent"),
    "data formats": ("json", "xml", "csv", "html", "pickle"),
}
"""Concepts of related words (name -> words) for concept plants when the user gives none."""

_WORD = re.compile(r"[A-Za-z]{3,}")


def word_tokens(tokenizer: Any, token_ids: Iterable[int]) -> dict[str, frozenset[int]]:
    """word (lower case) -> the token ids among ``token_ids`` that spell it as a whole word."""
    spaced = _uses_leading_spaces(tokenizer)
    found: dict[str, set[int]] = {}
    for tid in set(token_ids):
        text = tokenizer.decode([tid])
        if spaced:
            if not text.startswith(" "):
                continue
            text = text[1:]
        if _WORD.fullmatch(text):
            found.setdefault(text.lower(), set()).add(tid)
    return {w: frozenset(ids) for w, ids in found.items()}


def spellings(tokenizer: Any, words: Iterable[str]) -> dict[str, frozenset[int]]:
    """word (lower case) -> every token id of the vocabulary whose text, decoded alone, is that
    word up to case and leading space markers (``explain.ngram.term_key``, as the lexical
    simulator reads tokens); words with no such token are left out."""
    wanted = set(words)
    found: dict[str, set[int]] = {}
    for tid in range(len(tokenizer)):
        key = term_key(tokenizer.decode([tid]))
        if key in wanted:
            found.setdefault(key, set()).add(tid)
    return {w: frozenset(ids) for w, ids in found.items()}


def _uses_leading_spaces(tokenizer: Any) -> bool:
    """True for byte-level BPE tokenizers, whose word-start tokens carry the space."""
    ids = tokenizer("a hello", add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids[-1:]).startswith(" ")


def window_counts(
    windows: Sequence[Sequence[int]], words: Mapping[str, frozenset[int]]
) -> Counter[str]:
    """In how many windows each word occurs (once per window)."""
    word_of = {tid: w for w, ids in words.items() for tid in ids}
    counts: Counter[str] = Counter()
    for window in windows:
        counts.update({word_of[t] for t in window if t in word_of})
    return counts


def eligible_words(counts: Counter[str], n_windows: int, min_windows: int) -> list[str]:
    """Words neither rare (< ``min_windows`` windows) nor stop words nor common, sorted."""
    most = MAX_WINDOW_SHARE * n_windows
    return sorted(
        w for w, n in counts.items() if w not in STOP_WORDS and min_windows <= n <= most
    )


def draw_words(eligible: Sequence[str], n: int, seed: int) -> list[str]:
    """``n`` of the eligible words at random (seeded), in the order drawn."""
    if n > len(eligible):
        raise BadInput(
            f"only {len(eligible)} words of the corpus can be triggers (neither rare nor stop "
            f"words), fewer than the {n} plants asked for; plant fewer units or read more "
            "windows (collect.max_windows)"
        )
    return random.Random(seed).sample(list(eligible), n)


def parse_concepts(specs: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``["files=file,path,folder", ...]`` -> {name: words}; BadInput on a malformed one."""
    concepts: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        words = tuple(w.strip().lower() for w in rest.split(",") if w.strip())
        if not sep or not name.strip() or not words:
            raise BadInput(f"concept '{spec}' is not name=word,word,...: the trigger list is empty")
        if not 1 <= len(words) <= 8:
            raise BadInput(f"concept '{name.strip()}' has {len(words)} words; give 1 to 8")
        concepts[name.strip()] = words
    return concepts

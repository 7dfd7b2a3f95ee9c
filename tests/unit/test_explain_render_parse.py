"""Pure pieces of the explainers: normalisation, highlighting, cropping, parsing."""

from __future__ import annotations

import pytest

from neuroscribe.explain.parse import MAX_CHARS, ParseFailure, parse_explanation
from neuroscribe.explain.render import (
    crop,
    display_pieces,
    escape_token,
    highlight_line,
    normalize,
    render_table,
)


def test_normalize_matches_openai_worked_example():
    assert normalize([-0.5, 0, 0.99, 1, 2, 3.7, 4], 4) == [0, 0, 2, 2, 5, 9, 10]
    assert normalize([1.0, 2.0], 0.0) == [0, 0]


def test_highlight_marks_runs_and_keeps_spaces_outside():
    tokens = ["The", " big", " zebra", " ran", " fast", "."]
    acts = [0, 0.1, 5.0, 2.0, 0.0, 0.0]
    assert highlight_line(tokens, acts) == "The big <<zebra ran>> fast."
    assert highlight_line(tokens, [0.0] * 6) is None


def test_highlight_collapses_newlines_and_crops():
    tokens = [f" w{i}" for i in range(30)]
    tokens[20] = "\n zebra"
    acts = [0.0] * 30
    acts[20] = 1.0
    line = highlight_line(tokens, acts)
    assert line == "w12 w13 w14 w15 w16 w17 w18 w19 <<zebra>> w21 w22 w23"
    assert list(crop(30, [20])) == list(range(12, 24))


def test_wordpiece_tokens_are_joined_with_spaces():
    assert "".join(display_pieces(["the", "zeb", "##ra", "ran"])) == "the zebra ran"
    assert "".join(display_pieces([" the", " zebra"])) == " the zebra"


def test_table_escapes_tokens_and_uses_global_max():
    table = render_table([(["a", "\tb", "\n"], [0.0, 2.0, 4.0]), (["c"], [8.0])])
    assert table == "<start>\na\t0\n\\tb\t2\n\\n\t5\n<end>\n<start>\nc\t10\n<end>"
    assert escape_token("a\\b") == "a\\\\b"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Colour words.", "Colour words"),
        ('  "Animal names such as zebra."  ', "Animal names such as zebra"),
        ("Explanation: the word zebra. It also fires on horses.", "the word zebra"),
        ("[EXPLANATION]: mentions of zebras", "mentions of zebras"),
        ("1. Answer: stripes, e.g. zebra patterns. More", "stripes, e.g. zebra patterns"),
        ("the main thing this neuron does is find animal names.", "animal names"),
        ('The words "red" and "blue".', 'The words "red" and "blue"'),
        ("\n\nNames of animals\nsecond line", "Names of animals"),
        ('"Unbalanced quote at start.', "Unbalanced quote at start"),
    ],
)
def test_parse_cleans_to_one_sentence(raw, clean):
    assert parse_explanation(raw) == clean


def test_parse_caps_length_at_a_word_boundary():
    text = parse_explanation("zebra " * 100)
    assert len(text) <= MAX_CHARS and text.endswith("zebra")


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("", "empty"),
        ("   \n  ", "empty"),
        ('""', "empty"),
        ("Explanation:", "empty"),
        ("12 34 !!", "unparseable"),
        ("1. the <<zebra>> ran", "unparseable"),
    ],
)
def test_parse_failures_are_typed(raw, kind):
    with pytest.raises(ParseFailure) as err:
        parse_explanation(raw)
    assert err.value.kind == kind

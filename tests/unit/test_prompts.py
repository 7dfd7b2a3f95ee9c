"""Prompt files: loading, strict rendering, and rendered prompts compared to expected files.

Set NEUROSCRIBE_UPDATE_GOLDEN=1 to rewrite the expected files after a deliberate prompt change
(then review the diff: it is the prompt change).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import make_window, planted_unit  # noqa: E402

from neuroscribe.config import ExplainConfig  # noqa: E402
from neuroscribe.explain.llm import prompt_for, render_messages  # noqa: E402
from neuroscribe.llm.base import Message  # noqa: E402
from neuroscribe.prompts import (  # noqa: E402
    PromptError,
    available_prompts,
    load_prompt,
    prompts_dir,
)
from neuroscribe.records import Explanation  # noqa: E402
from neuroscribe.simulate.all_at_once import AllAtOnceSimulator  # noqa: E402
from neuroscribe.simulate.json_mode import JsonSimulator  # noqa: E402

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
ALL = (
    "explain_highlight",
    "explain_table",
    "simulate_all_at_once",
    "simulate_json",
    "simulate_json_repair",
)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("NEUROSCRIBE_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing expected file {path} (set NEUROSCRIBE_UPDATE_GOLDEN=1)"
    assert text == path.read_text(encoding="utf-8")


def as_text(messages: tuple[Message, ...]) -> str:
    return "".join(f"=== {m.role} ===\n{m.content}\n" for m in messages)


def test_every_prompt_loads_with_name_version_and_sha():
    assert prompts_dir().is_dir()
    found = available_prompts()
    for name in ALL:
        p = load_prompt(name)
        assert (p.name, p.version) == (name, found[name][-1])
        assert len(p.sha) == 16
        assert load_prompt(f"{name}.v{p.version}") == p


def test_render_is_strict_both_ways():
    p = load_prompt("simulate_json_repair")
    assert p.variables == {"error", "n_tokens"}
    with pytest.raises(PromptError, match=r"missing variables \['n_tokens'\]"):
        p.render(error="x")
    with pytest.raises(PromptError, match=r"unused variables \['extra'\]"):
        p.render(error="x", n_tokens="3", extra="y")
    text = p.render(error="bad $thing", n_tokens="3")  # values are not re-substituted
    assert "bad $thing" in text and "exactly 3 entries" in text


def test_header_is_not_sent_but_is_hashed(tmp_path):
    body = "=== user ===\nHello $who\n"
    (tmp_path / "greet.v1.txt").write_text("# a greeting\n" + body)
    (tmp_path / "greet.v2.txt").write_text("# a greeting, changed comment\n" + body)
    v1, v2 = load_prompt("greet.v1", tmp_path), load_prompt("greet", tmp_path)
    assert v2.version == "2" and v1.sha != v2.sha
    assert v1.render_messages(who="you") == (Message(role="user", content="Hello you"),)


def test_unknown_prompt_and_bad_file(tmp_path):
    with pytest.raises(PromptError, match="no prompt named"):
        load_prompt("nope", tmp_path)
    (tmp_path / "bad.v1.txt").write_text("no role marker\n")
    with pytest.raises(PromptError, match="must start with"):
        load_prompt("bad", tmp_path)
    with pytest.raises(PromptError, match="versions"):
        load_prompt("bad.v9", tmp_path)


def test_few_shot_examples_avoid_the_corpus_vocabulary():
    # SmolLM2 copies words from the prompt; the default corpus is Python docstrings.
    banned = {
        "return",
        "returns",
        "function",
        "file",
        "string",
        "module",
        "object",
        "class",
        "argument",
        "value",
        "list",
        "python",
    }
    for name in ALL:
        words = {w.strip(".,:;\"'()<>").lower() for w in load_prompt(name).body.split()}
        assert not words & banned, (name, words & banned)


@pytest.mark.parametrize("fmt", ["highlight", "table"])
def test_explainer_prompt_matches_expected(fmt):
    unit, windows = planted_unit(n_explain=3, length=12)
    messages = render_messages(prompt_for(fmt), ExplainConfig(format=fmt).format, unit, windows)
    assert messages[0].role == "system"  # SmolLM2's template injects its own otherwise
    check_golden(f"explain_{fmt}.txt", as_text(messages))


def _explanation() -> Explanation:
    return Explanation(
        explanation_id="e1", unit_key="u", explainer="fake/x", text='the token "zebra"'
    )


def test_all_at_once_prompt_matches_expected():
    from neuroscribe.llm.factory import make_backend
    from neuroscribe.llm.fake import register_fake

    register_fake("fake/golden-dist", distributions=lambda p, pos, c: [])
    sim = AllAtOnceSimulator("fake/golden-dist", make_backend("fake/golden-dist"))
    tokens = ["A", " zebra", "\tx", "\n", "", " end"]
    text, offsets = sim.prompt_text('the token "zebra"', tokens)
    assert [text[o - 1] for o in offsets] == ["\t"] * len(tokens)
    check_golden("simulate_all_at_once.txt", text)


def test_json_simulator_prompt_matches_expected():
    from neuroscribe.llm.factory import make_backend
    from neuroscribe.llm.fake import register_fake

    register_fake("fake/golden-json", ["{}"])
    sim = JsonSimulator("fake/golden-json", make_backend("fake/golden-json"))
    window = make_window(["A", " zebra", ' "quoted"', "\n"])
    check_golden("simulate_json.txt", as_text(sim.messages(_explanation().text, window.tokens)))

"""Simulators with no model: lexical matching, all-at-once reading on scripted distributions,
JSON answers with a repair turn, and the capability-driven factory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import make_window  # noqa: E402

from neuroscribe.config import AnnotatorConfig, SimulateConfig  # noqa: E402
from neuroscribe.llm.base import Capabilities, Ledger  # noqa: E402
from neuroscribe.llm.fake import register_fake  # noqa: E402
from neuroscribe.records import Explanation  # noqa: E402
from neuroscribe.simulate import make_simulator  # noqa: E402
from neuroscribe.simulate.all_at_once import (  # noqa: E402
    AllAtOnceSimulator,
    expected_values,
    render_table,
)
from neuroscribe.simulate.json_mode import JsonSimulator, answer_schema, parse_answer  # noqa: E402
from neuroscribe.simulate.lexical import LexicalSimulator, explanation_terms  # noqa: E402


def expl(text: str | None = 'the token "zebra"', eid: str = "e1") -> Explanation:
    if text is None:
        return Explanation(
            explanation_id=eid, unit_key="u", explainer="x", status="failed", failure="empty"
        )
    return Explanation(explanation_id=eid, unit_key="u", explainer="x", text=text)


WINDOW = make_window(["The", " Zebra", " and", " zebras", "\tze", "\n", "", " Ġzebra", "▁zebra"])


# --- lexical ------------------------------------------------------------------------------------


def test_lexical_matches_named_words_case_insensitively():
    [sim] = LexicalSimulator().simulate(expl(), [WINDOW])
    assert sim.status == "ok" and sim.simulator == "baseline/lexical"
    assert sim.predictions == (0, 10, 0, 10, 0, 0, 0, 10, 10)


def test_lexical_terms_keep_quoted_words_and_drop_explanation_vocabulary():
    assert explanation_terms('the token "the"') >= {"the"}
    terms = explanation_terms("words related to animals such as zebras")
    assert "zebra" in terms and "animals" in terms
    assert not terms & {"words", "related", "to", "such", "as"}
    assert "()" in explanation_terms('the tokens "()" and "zebra"')


def test_lexical_is_deterministic_and_fails_typed_without_explanation():
    a = LexicalSimulator().simulate(expl(), [WINDOW])
    assert a == LexicalSimulator().simulate(expl(), [WINDOW])
    [f] = LexicalSimulator().simulate(expl(None), [WINDOW])
    assert (f.status, f.failure, f.predictions) == ("failed", "no_explanation", ())


# --- all at once --------------------------------------------------------------------------------


def test_table_has_one_tab_per_token_whatever_the_tokens():
    tokens = ["a\tb", "\n\n", "", "\\", " x\r"]
    table, offsets = render_table(tokens)
    assert table.count("\t") == len(tokens) == len(offsets) == len(table.split("\n"))
    assert all(table[o - 1] == "\t" for o in offsets)


def test_expected_value_renormalises_over_digits_and_rescales():
    [v] = expected_values([{"0": 0.05, "9": 0.05}])  # 10% mass, split evenly
    assert v == pytest.approx(5.0)
    assert expected_values([{"0": 0.0, "9": 0.0}]) is None


def _digit_reader(prompt, positions, candidates):
    """Puts all digit mass on 9 after a tab that follows "zebra", on 0 elsewhere."""
    out = []
    for p in positions:
        line = prompt[:p].rsplit("\n", 1)[-1]
        hot = "zebra" in line.lower()
        out.append({c: 0.1 if c == ("9" if hot else "0") else 0.0 for c in candidates})
    return out


def test_all_at_once_reads_digits_at_every_token():
    register_fake("fake/reader", distributions=_digit_reader)
    ledger = Ledger()
    sim = make_simulator("fake/reader", SimulateConfig(), ledger)
    assert isinstance(sim, AllAtOnceSimulator)
    short = make_window([" zebra"])
    out = sim.simulate(expl(), [WINDOW, short])
    assert [s.status for s in out] == ["ok", "ok"]
    assert len(out[0].predictions) == len(WINDOW.tokens)
    assert out[0].predictions == pytest.approx([0, 10, 0, 10, 0, 0, 0, 10, 10])
    assert out[1].predictions == pytest.approx([10.0])
    assert out[0].prompt.name == "simulate_all_at_once"
    assert [c.purpose for c in ledger.calls] == ["simulate", "simulate"]
    digit_mass = [sum(d.values()) for d in json.loads(ledger.calls[0].response)]
    assert digit_mass == pytest.approx([0.1] * len(WINDOW.tokens))


def test_all_at_once_failures_are_typed_not_zeros():
    register_fake("fake/no-digits", distributions=lambda p, pos, c: [{} for _ in pos])
    [s] = make_simulator("fake/no-digits", SimulateConfig()).simulate(expl(), [WINDOW])
    assert (s.status, s.failure, s.predictions) == ("failed", "no_digit_mass", ())

    def misaligned(prompt, positions, candidates):
        raise ValueError("no token boundary")

    register_fake("fake/misaligned", distributions=misaligned)
    [s] = make_simulator("fake/misaligned", SimulateConfig()).simulate(expl(), [WINDOW])
    assert s.failure == "alignment"
    [s] = make_simulator("fake/no-digits", SimulateConfig()).simulate(expl(None), [WINDOW])
    assert s.failure == "no_explanation"
    [s] = make_simulator("fake/no-digits", SimulateConfig()).simulate(expl(), [make_window([])])
    assert s.status == "ok" and s.predictions == ()


# --- JSON ---------------------------------------------------------------------------------------


def answer(values, tokens=None):
    tokens = tokens or ["t"] * len(values)
    return json.dumps(
        {
            "activations": [
                {"token": t, "activation": v} for t, v in zip(tokens, values, strict=True)
            ]
        }
    )


def test_parse_answer_validates_shape_count_and_range():
    assert parse_answer("```json\n" + answer([0, 10, 2.5]) + "\n```", 3) == [0, 10, 2.5]
    for bad, kind in [
        ("no json", "unparseable"),
        ("{oops", "unparseable"),
        (answer([0, 11]), "unparseable"),
        ('{"activations": 3}', "unparseable"),
        (answer([1, 2]), "wrong_length"),
    ]:
        with pytest.raises(ValueError) as err:
            parse_answer(bad, 3)
        assert err.value.kind == kind, bad
    schema = answer_schema(4)["properties"]["activations"]
    assert schema["minItems"] == schema["maxItems"] == 4


DENSE = AnnotatorConfig(simulate_format="dense")
"""The dense answer format, which these tests script (the default is sparse)."""


def test_json_simulator_answers_and_repairs_once():
    n = len(WINDOW.tokens)
    spec = register_fake("fake/json", ["not json", answer([1.0] * n)])
    ledger = Ledger()
    sim = make_simulator("fake/json", SimulateConfig(), ledger, DENSE)
    assert isinstance(sim, JsonSimulator)
    [s] = sim.simulate(expl(), [WINDOW])
    assert s.status == "ok" and s.predictions == (1.0,) * n
    first, repair = spec.requests
    assert first.json_schema == answer_schema(n) and first.temperature == 0
    assert repair.messages[-2].role == "assistant" and repair.messages[-2].content == "not json"
    assert "could not be used" in repair.messages[-1].content
    assert len(ledger.calls) == 2 and ledger.calls[0].prompt_sha == s.prompt.sha


def test_json_simulator_gives_up_after_one_repair_with_the_last_kind():
    register_fake("fake/json-bad", ["not json", answer([1.0])])
    [s] = make_simulator("fake/json-bad", SimulateConfig(), None, DENSE).simulate(expl(), [WINDOW])
    assert (s.status, s.failure, s.predictions) == ("failed", "wrong_length", ())
    register_fake("fake/json-down", [ConnectionError("down")])
    [s] = make_simulator("fake/json-down", SimulateConfig(), None, DENSE).simulate(expl(), [WINDOW])
    assert s.failure == "backend_error"


def test_json_simulator_without_schema_capability_asks_in_the_prompt_only():
    spec = register_fake(
        "fake/json-noschema", [answer([0.0] * 9)], capabilities=Capabilities(json_schema=False)
    )
    [s] = make_simulator("fake/json-noschema", SimulateConfig(), None, DENSE).simulate(
        expl(), [WINDOW]
    )
    assert s.status == "ok" and spec.requests[0].json_schema is None


def test_simulation_ids_depend_on_explanation_window_and_simulator():
    a = LexicalSimulator().simulate(expl(eid="e1"), [WINDOW, make_window(["x"])])
    b = LexicalSimulator().simulate(expl(eid="e2"), [WINDOW])
    assert len({a[0].simulation_id, a[1].simulation_id, b[0].simulation_id}) == 3


def test_unknown_simulators_are_named():
    with pytest.raises(ValueError, match="valid: local, openai, fake, baseline"):
        make_simulator("vllm/x", SimulateConfig())
    with pytest.raises(ValueError, match="baseline/lexical"):
        make_simulator("baseline/embedding", SimulateConfig())

"""The JSON simulator's sparse answer format: only the tokens predicted to fire are listed.

Parsing hand-written answers (good, miscounted, hostile, malformed), the schema, and the
simulator end to end on a scripted backend, the repair turn included."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import get_args

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import make_window  # noqa: E402

from neuroscribe.config import AnnotatorConfig, SimulateConfig  # noqa: E402
from neuroscribe.llm.base import Capabilities, Ledger  # noqa: E402
from neuroscribe.llm.fake import register_fake  # noqa: E402
from neuroscribe.records import Explanation  # noqa: E402
from neuroscribe.simulate import make_simulator  # noqa: E402
from neuroscribe.simulate.json_mode import FORMATS, JsonSimulator  # noqa: E402
from neuroscribe.simulate.sparse import (  # noqa: E402
    AnswerError,
    locate,
    numbered_tokens,
    parse_sparse,
    sparse_schema,
)

TOKENS = ["The", " zebra", " and", " the", " Zebra", "\n", ' "x"', " zebra"]
SPARSE = AnnotatorConfig(simulate_format="sparse")


def fires(*entries: tuple[int, str, float]) -> str:
    return json.dumps({"fires": [{"index": i, "token": t, "activation": a} for i, t, a in entries]})


def expl() -> Explanation:
    return Explanation(explanation_id="e1", unit_key="u", explainer="x", text='the word "zebra"')


def test_listed_tokens_get_their_level_and_every_other_token_zero():
    assert parse_sparse(fires((1, " zebra", 8), (7, " zebra", 6.5)), TOKENS) == [
        0,
        8,
        0,
        0,
        0,
        0,
        0,
        6.5,
    ]
    assert parse_sparse('{"fires": []}', TOKENS) == [0.0] * len(TOKENS)
    # Fenced, with prose around it, as chat models answer without a schema.
    text = "Here:\n```json\n" + fires((4, " Zebra", 3)) + "\n```"
    assert parse_sparse(text, TOKENS)[4] == 3


def test_a_miscounted_index_lands_on_the_nearest_token_that_matches():
    # The token at 2 is " and": the entry means a zebra, the nearest one is at 1 (4 is further).
    assert locate(TOKENS, 2, "zebra") == 1
    assert locate(TOKENS, 6, " zebra") == 7  # 7 is 1 away, 4 is 2 away
    assert locate(TOKENS, 99, "\n") == 5  # out of range, found by its token
    assert locate(TOKENS, 3, " THE") == 3  # case and space do not matter
    assert locate(TOKENS, 1, "giraffe") is None
    # Two entries on one position keep the higher level.
    assert parse_sparse(fires((1, " zebra", 2), (2, "zebra", 9)), TOKENS)[1] == 9


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ("no json here", "unparseable"),
        ('{"fires": [', "unparseable"),
        ('{"fires": 3}', "unparseable"),
        ('{"activations": []}', "unparseable"),
        (fires((1, " zebra", 11)), "unparseable"),  # above the scale
        (fires((1, " zebra", -1)), "unparseable"),
        ('{"fires": [{"index": "one", "token": " zebra", "activation": 3}]}', "unparseable"),
        ('{"fires": [{"index": 1, "activation": 3}]}', "unparseable"),
        (fires((1, " giraffe", 5)), "bad_position"),  # a token the text does not have
        (fires((1, " zebra", 5), (40, "Ignore previous instructions", 10)), "bad_position"),
    ],
)
def test_bad_answers_are_typed_failures(answer, kind):
    with pytest.raises(AnswerError) as err:
        parse_sparse(answer, TOKENS)
    assert err.value.kind == kind


def test_the_schema_allows_at_most_one_entry_per_token():
    schema = sparse_schema(8)
    assert schema["properties"]["fires"]["maxItems"] == 8
    assert schema["properties"]["fires"]["items"]["required"] == ["index", "token", "activation"]
    assert schema["additionalProperties"] is False


def test_numbered_tokens_keep_one_token_per_line():
    text = numbered_tokens(TOKENS)
    lines = text.split("\n")
    assert len(lines) == len(TOKENS)
    assert lines[5] == '5 "\\n"' and lines[6] == '6 " \\"x\\""'
    assert [json.loads(line.split(" ", 1)[1]) for line in lines] == TOKENS


def test_the_sparse_simulator_reads_answers_and_repairs_once():
    window = make_window(TOKENS)
    spec = register_fake(
        "fake/sparse", ['{"fires": [{"index": 1, "token": " giraffe"', fires((1, " zebra", 8))]
    )
    ledger = Ledger()
    sim = make_simulator("fake/sparse", SimulateConfig(), ledger, SPARSE)
    assert isinstance(sim, JsonSimulator) and sim.prompt.name == "simulate_sparse"
    [s] = sim.simulate(expl(), [window])
    assert s.status == "ok" and s.predictions == (0, 8, 0, 0, 0, 0, 0, 0)
    assert s.prompt is not None and s.prompt.name == "simulate_sparse"
    first, repair = spec.requests
    assert first.json_schema == sparse_schema(len(TOKENS))
    assert first.max_tokens < FORMATS["dense"].max_tokens(len(TOKENS))
    assert '1 " zebra"' in first.messages[-1].content
    assert "could not be used" in repair.messages[-1].content
    assert f"the text has {len(TOKENS)} tokens" in repair.messages[-1].content
    assert len(ledger.calls) == 2 and ledger.calls[0].prompt_sha == s.prompt.sha


def test_the_sparse_simulator_gives_up_with_the_last_kind():
    window = make_window(TOKENS)
    register_fake("fake/sparse-bad", ["nope", fires((0, "giraffe", 4))])
    [s] = make_simulator("fake/sparse-bad", SimulateConfig(), None, SPARSE).simulate(
        expl(), [window]
    )
    assert (s.status, s.failure, s.predictions) == ("failed", "bad_position", ())


def test_without_schema_capability_the_prompt_alone_asks_for_the_format():
    spec = register_fake(
        "fake/sparse-noschema", ['{"fires": []}'], capabilities=Capabilities(json_schema=False)
    )
    [s] = make_simulator("fake/sparse-noschema", SimulateConfig(), None, SPARSE).simulate(
        expl(), [make_window(TOKENS)]
    )
    assert s.status == "ok" and s.predictions == (0.0,) * len(TOKENS)
    assert spec.requests[0].json_schema is None


def test_sparse_is_the_default_and_the_formats_differ_in_prompt_sha():
    register_fake("fake/fmt", ['{"fires": []}'])
    default = make_simulator("fake/fmt", SimulateConfig())
    sparse = make_simulator("fake/fmt", SimulateConfig(), None, SPARSE)
    dense = make_simulator(
        "fake/fmt", SimulateConfig(), None, AnnotatorConfig(simulate_format="dense")
    )
    assert isinstance(default, JsonSimulator) and default.prompt.name == "simulate_sparse"
    assert isinstance(sparse, JsonSimulator) and sparse.prompt.sha == default.prompt.sha
    assert isinstance(dense, JsonSimulator) and dense.prompt.name == "simulate_json"
    assert sparse.prompt.sha != dense.prompt.sha
    allowed, _none = get_args(AnnotatorConfig.model_fields["simulate_format"].annotation)
    assert set(FORMATS) == set(get_args(allowed))

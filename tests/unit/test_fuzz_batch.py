"""The batched fuzz judge (``AnnotatorConfig.fuzz_batch``) and the pooled fuzz stage: several
marked windows per call, never two markings of one window in a call, answers and logprob
confidences read per item, and the calls of many explanations in one pool."""

from __future__ import annotations

import math
import re
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import TRIGGER, planted_unit, planted_units  # noqa: E402
from test_prompts import as_text, check_golden  # noqa: E402

from neuroscribe.config import AnnotatorConfig, RunConfig, ScoreConfig, SimulateConfig  # noqa: E402
from neuroscribe.llm.base import Capabilities, Ledger, TokenLogprobs  # noqa: E402
from neuroscribe.llm.fake import register_fake, unregister_fake  # noqa: E402
from neuroscribe.records import Explanation  # noqa: E402
from neuroscribe.simulate import fuzz_units, make_fuzz_judge  # noqa: E402
from neuroscribe.simulate.fuzz import build_fuzz_items  # noqa: E402
from neuroscribe.simulate.fuzz_llm import (  # noqa: E402
    LLMFuzzJudge,
    answer_confidences,
    batch_groups,
    batch_schema,
    parse_batch,
)

WORD = TRIGGER.strip()


def marks_trigger(text: str) -> bool:
    """Whether a marked run of ``text`` holds the trigger (adjacent marks make one run)."""
    return any(WORD in run for run in re.findall(r"<<(.*?)>>", text))


def explanation(eid: str = "E", unit_key: str = "u") -> Explanation:
    return Explanation(explanation_id=eid, unit_key=unit_key, explainer="x/y",
                       text=f'the word "{WORD}"')


def texts_of(request) -> list[str]:
    return re.findall(r"<text \d+>\n(.*?)\n</text \d+>", request.messages[-1].content)


def judge_texts(request) -> str:
    """Yes for each text whose marks hold the trigger word."""
    answers = ['"yes"' if marks_trigger(t) else '"no"' for t in texts_of(request)]
    return '{"answers": [' + ", ".join(answers) + "]}"


def test_batch_groups_never_put_two_markings_of_a_window_in_one_call():
    unit, _ = planted_unit(n_validate=6, length=12)
    items = build_fuzz_items(unit, 10, seed=0)
    assert len(items) == 12
    for batch in (1, 2, 3, 4, 100):
        groups = batch_groups(items, batch)
        assert sorted(i for g in groups for i in map(items.index, g)) == list(range(len(items)))
        assert all(len(g) <= batch for g in groups)
        assert all(len({i.window_id for i in g}) == len(g) for g in groups)
    big = batch_groups(items, 100)
    assert len(big) == 2 and all({i.correct for i in g} == {True, False} for g in big)


def test_parse_batch_and_schema():
    assert parse_batch('{"answers": ["yes", "No"]}', 2) == [True, False]
    assert parse_batch('Sure: {"answers": ["no"]}', 1) == [False]
    for bad in ('{"answers": ["yes"]}', '{"answers": ["yes", "maybe"]}', "yes, no",
                '{"answers": "yes no"}', '{"answers": [1, 0]}', "{oops"):
        assert parse_batch(bad, 2) is None, bad
    schema = batch_schema(3)["properties"]["answers"]
    assert schema["minItems"] == schema["maxItems"] == 3
    assert schema["items"]["enum"] == ["yes", "no"]


def test_answer_confidences_are_read_at_the_answer_tokens():
    def step(token, *top):
        return TokenLogprobs(token=token, top=tuple((t, math.log(p)) for t, p in top))

    steps = (
        step('{"', ('{"', 1.0)), step("answers", ("answers", 1.0)), step('":', ('":', 1.0)),
        step(' ["', (' ["', 1.0)), step("yes", ("yes", 0.6), ("no", 0.2), ("maybe", 0.2)),
        step('",', ('",', 1.0)), step(' "no', (' "no', 0.3), (' "yes', 0.1)), step('"]}', ("]", 1)),
    )
    assert answer_confidences(steps, 2) == [pytest.approx(0.75), pytest.approx(0.25)]
    assert answer_confidences(steps, 3) is None  # a count that does not match: no confidences


def test_a_batched_judge_gives_the_verdicts_of_one_call_per_item_in_fewer_calls():
    unit, windows = planted_unit(n_validate=4, length=12)
    items = build_fuzz_items(unit, 10, seed=0)
    single = register_fake("fake/fuzz-one", lambda r: '{"answer": "yes"}' if marks_trigger(
        r.messages[-1].content) else '{"answer": "no"}')
    batched = register_fake("fake/fuzz-many", judge_texts)
    try:
        one = make_fuzz_judge("fake/fuzz-one", SimulateConfig())
        many = make_fuzz_judge("fake/fuzz-many", SimulateConfig(), Ledger(),
                               AnnotatorConfig(fuzz_batch=3))
        assert isinstance(many, LLMFuzzJudge) and many.prompt.name == "fuzz_batch"
        expected = one.judge(explanation(), items, windows)
        got = many.judge(explanation(), items, windows)
        assert [v.answer for v in got] == [v.answer for v in expected] == [
            i.correct for i in items
        ]
        assert [v.item for v in got] == items
        assert all(v.prompt is not None and v.prompt.name == "fuzz_batch" for v in got)
        assert len(single.requests) == len(items) == 8
        assert len(batched.requests) == 4  # two rounds of 4 windows, in calls of at most 3
        assert batched.requests[0].json_schema == batch_schema(3)
    finally:
        unregister_fake("fake/fuzz-one")
        unregister_fake("fake/fuzz-many")


def test_a_bad_batch_answer_fails_each_of_its_items_and_no_schema_means_no_batch():
    unit, windows = planted_unit(length=12)
    items = build_fuzz_items(unit, 2, seed=0)
    register_fake("fake/fuzz-bad", ['{"answers": ["yes"]}', RuntimeError("down")])
    register_fake("fake/fuzz-noschema", lambda r: "yes",
                  capabilities=Capabilities(json_schema=False))
    try:
        judge = make_fuzz_judge("fake/fuzz-bad", SimulateConfig(), None,
                                AnnotatorConfig(fuzz_batch=8))
        verdicts = judge.judge(explanation(), items, windows)
        # Round 0 holds window 0's correct and window 1's decoy items, round 1 the others.
        assert [v.failure for v in verdicts] == [
            "unparseable", "backend_error", "backend_error", "unparseable"
        ]
        plain = make_fuzz_judge("fake/fuzz-noschema", SimulateConfig(), None,
                                AnnotatorConfig(fuzz_batch=8))
        assert isinstance(plain, LLMFuzzJudge) and plain.batch == 1
        assert plain.prompt.name == "fuzz"
    finally:
        unregister_fake("fake/fuzz-bad")
        unregister_fake("fake/fuzz-noschema")


def test_the_batch_prompt_matches_expected():
    unit, windows = planted_unit(length=12)
    items = build_fuzz_items(unit, 2, seed=0)
    register_fake("fake/fuzz-golden-batch", judge_texts)
    try:
        judge = make_fuzz_judge("fake/fuzz-golden-batch", SimulateConfig(), None,
                                AnnotatorConfig(fuzz_batch=4))
        assert isinstance(judge, LLMFuzzJudge)
        group = batch_groups(items, 4)[0]
        texts = [(windows[i.window_id].tokens, i.marked) for i in group]
        check_golden("fuzz_batch.txt", as_text(judge.batch_messages(f'the word "{WORD}"', texts)))
    finally:
        unregister_fake("fake/fuzz-golden-batch")


def test_the_fuzz_stage_pools_the_calls_of_many_units():
    # Six units, fuzzed on one window each (two items): every call waits at a barrier of four,
    # which only a stage that has the calls of more than one unit in flight at once can pass
    # (scripted backends run in the default thread pool, which has at least five threads).
    units, windows = planted_units(6)
    explanations = [
        explanation(f"E{k}", u.unit.key).model_copy(update={"selected": True})
        for k, u in enumerate(units)
    ]
    assert sum(len(build_fuzz_items(u, 1, 0)) for u in units) == 12
    barrier = threading.Barrier(4, timeout=30)

    def wait_then_answer(request):
        barrier.wait()
        return '{"answer": "yes"}' if marks_trigger(request.messages[-1].content) else (
            '{"answer": "no"}')

    name = "fake/fuzz-pooled"
    register_fake(name, wait_then_answer)
    try:
        cfg = RunConfig.model_validate({
            "simulate": {"simulators": [name]}, "score": ScoreConfig(fuzz_windows=1).model_dump(),
            "annotators": {name: {"concurrency": 32}},
        })
        scores = fuzz_units(explanations, units, windows, cfg, Ledger())
    finally:
        unregister_fake(name)
    # A broken barrier would be a backend error of every call: no verdict, no score.
    bacc = [s for s in scores if s.kind == "fuzz_bacc"]
    assert len(bacc) == len(units) and all(s.value is not None for s in bacc)
    assert all(s.value == 1.0 for s in bacc)

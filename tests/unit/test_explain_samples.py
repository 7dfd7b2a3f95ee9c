"""Several samples per unit when an endpoint refuses ``n > 1`` (``explain.samples``), and the
explainers that produced nothing (``explain.silent_annotators``), with the scripted backend."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annotator_fixtures import planted_unit, planted_units  # noqa: E402

from neuroscribe.config import ExplainConfig  # noqa: E402
from neuroscribe.explain import ExplainFailure, explain_many, make_explainer  # noqa: E402
from neuroscribe.explain.samples import refuses_n  # noqa: E402
from neuroscribe.explain.units import silent_annotators  # noqa: E402
from neuroscribe.llm.base import ChatRequest, Ledger  # noqa: E402
from neuroscribe.llm.fake import register_fake, unregister_fake  # noqa: E402
from neuroscribe.llm.recorder import BackendError  # noqa: E402
from neuroscribe.records import Explanation  # noqa: E402
from neuroscribe.score.controls import SHUFFLED_CONTROL  # noqa: E402

LLAMA = "openai/m: BadRequestError: Error code: 400 - {'error': {'code': 400, 'message': \"Field 'n' must be between 1 and 2\", 'type': 'invalid_request_error'}}"  # noqa: E501


@pytest.mark.parametrize(
    ("message", "kind", "refused"),
    [
        (LLAMA, "client_error", True),
        ("openai/m: BadRequestError: Unsupported value: 'n' must be 1", "client_error", True),
        ("openai/m: BadRequestError: n must be 1 for this model", "client_error", True),
        ("openai/m: UnprocessableEntityError: parameter n is not supported", "client_error", True),
        ("openai/m: BadRequestError: maximum context length exceeded", "client_error", False),
        ("openai/m: BadRequestError: Invalid 'messages[0].content'", "client_error", False),
        (LLAMA, "server_error", False),  # a 5xx is the endpoint's trouble, not the request's
    ],
)
def test_refusals_of_n_are_told_from_other_errors(message, kind, refused):
    assert refuses_n(BackendError(message, kind)) is refused


def capped(seen: list[ChatRequest], fail_seed: int | None = None):
    """A scripted endpoint that refuses n > 1 like llama-server, and answers n = 1 by seed."""

    def answer(request: ChatRequest):
        seen.append(request)
        if request.n > 1:
            return BackendError(LLAMA, "client_error")
        if request.seed == fail_seed:
            return BackendError("openai/m: InternalServerError: crash", "server_error")
        return f"Words about zebras, take {request.seed}."

    return answer


def test_a_refused_n_falls_back_to_one_call_per_sample_and_is_remembered():
    seen: list[ChatRequest] = []
    register_fake("fake/capped", capped(seen))
    try:
        units, windows = planted_units(3)
        ledger = Ledger()
        explainer = make_explainer("fake/capped", ExplainConfig(), ledger)
        out = explain_many(explainer, units, windows, 3, [10, 20, 30])
    finally:
        unregister_fake("fake/capped")
    assert [[e.status for e in es] for es in out] == [["ok"] * 3] * 3
    assert out[0][2].text == "Words about zebras, take 12"  # sample i has seed + i
    assert [r.n for r in seen].count(3) == 1  # later units never try n > 1 again
    assert [r.seed for r in seen if r.n == 1] == [10, 11, 12, 20, 21, 22, 30, 31, 32]
    assert explainer.sampler.separate is True
    refused = [c for c in ledger.calls if c.status == "failed"]
    assert len(refused) == 1 and refused[0].error.startswith("client_error:")


def test_one_failed_sample_call_fails_only_that_sample():
    seen: list[ChatRequest] = []
    register_fake("fake/capped-flaky", capped(seen, fail_seed=11))
    try:
        unit, windows = planted_unit()
        out = make_explainer("fake/capped-flaky", ExplainConfig()).explain(unit, windows, 3, 10)
    finally:
        unregister_fake("fake/capped-flaky")
    assert [e.status for e in out] == ["ok", "failed", "ok"]
    assert out[1].failure == ExplainFailure.BACKEND_ERROR


def test_an_endpoint_that_takes_n_gets_one_call_per_unit():
    seen: list[ChatRequest] = []

    def answer(request: ChatRequest):
        seen.append(request)
        return [f"Zebra words {i}." for i in range(request.n)]

    register_fake("fake/takes-n", answer)
    try:
        units, windows = planted_units(2)
        explainer = make_explainer("fake/takes-n", ExplainConfig())
        out = explain_many(explainer, units, windows, 3, [0, 1])
    finally:
        unregister_fake("fake/takes-n")
    assert [r.n for r in seen] == [3, 3]
    assert all(e.status == "ok" for es in out for e in es)
    assert explainer.sampler.separate is False


def test_another_error_on_the_probe_is_that_units_failure_and_decides_nothing():
    script = [BackendError("openai/m: APITimeoutError: timed out", "timeout"),
              ["A zebra.", "Zebras.", "Stripes."]]
    register_fake("fake/probe-timeout", script)
    try:
        units, windows = planted_units(2)
        explainer = make_explainer("fake/probe-timeout", ExplainConfig())
        out = explain_many(explainer, units, windows, 3, [0, 1])
    finally:
        unregister_fake("fake/probe-timeout")
    assert [e.failure for e in out[0]] == [ExplainFailure.BACKEND_ERROR] * 3
    assert [e.status for e in out[1]] == ["ok"] * 3
    assert explainer.sampler.separate is False


def _e(explainer: str, status: str, i: int = 0) -> Explanation:
    ok = status == "ok"
    return Explanation(
        explanation_id=f"{explainer}-{i}", unit_key=f"u{i}", explainer=explainer,
        status=status, text="zebras" if ok else None, failure=None if ok else "backend_error",
    )


def test_silent_annotators_are_those_without_one_ok_explanation():
    explanations = [
        _e("openai/m", "failed", 0), _e("openai/m", "failed", 1),
        _e("baseline/ngram", "ok", 0), _e("baseline/ngram", "failed", 1),
        _e("local/x", "failed", 0), _e("local/x", "ok", 1),
        _e(SHUFFLED_CONTROL, "ok", 0),
    ]
    assert silent_annotators(explanations) == ["openai/m"]
    assert silent_annotators(explanations, ["fake/none", "openai/m"]) == ["fake/none", "openai/m"]
    assert silent_annotators([]) == []
    assert silent_annotators([_e(SHUFFLED_CONTROL, "failed")]) == []

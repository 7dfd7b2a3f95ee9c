"""The run summary counts calls, cache hits, failures by kind, retries, tokens and cost."""

from __future__ import annotations

from neuroscribe.llm.base import LLMCall
from neuroscribe.llm.summary import failure_kind, format_summary, run_summary
from neuroscribe.records import Explanation


def call(annotator="openai/m", status="ok", error=None, hit=False, retries=0, cost=0.01):
    return LLMCall(
        request_hash="h",
        annotator=annotator,
        purpose="explain",
        prompt_sha=None,
        params={},
        response=None if status == "failed" else "x",
        status=status,
        error=error,
        prompt_tokens=10,
        completion_tokens=4,
        cost_usd=cost,
        cache_hit=hit,
        retries=retries,
    )


def test_summary_per_annotator():
    calls = [
        call(retries=2),
        call(hit=True, cost=0.0),
        call(status="failed", error="rate_limited: slow down", retries=4, cost=0.0),
        call(status="failed", error="timeout: 120 s", cost=0.0),
        call(annotator="local/x", cost=None),
    ]
    expl = [
        Explanation(explanation_id="e1", unit_key="u", explainer="openai/m", text="t"),
        Explanation(
            explanation_id="e2",
            unit_key="u",
            explainer="openai/m",
            status="failed",
            failure="backend_error",
        ),
    ]
    local, remote = run_summary(calls, expl)
    assert (remote.calls, remote.cache_hits, remote.ok, remote.failed) == (4, 1, 2, 2)
    assert remote.call_failures == {"rate_limited": 1, "timeout": 1}
    assert (remote.retries, remote.prompt_tokens, remote.completion_tokens) == (6, 30, 12)
    assert remote.cost_usd == 0.01 and local.cost_usd is None
    assert (remote.outputs_ok, remote.output_failures) == (1, {"backend_error": 1})
    text = format_summary([local, remote])
    assert "call:rate_limited=1" in text and "out:backend_error=1" in text


def test_failure_kind_reads_the_error_prefix():
    assert failure_kind("server_error: openai/m: InternalServerError: x") == "server_error"
    assert failure_kind("a sentence: with a colon") == "unknown"
    assert failure_kind(None) == "unknown"

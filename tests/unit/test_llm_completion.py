"""Reading chat-completions bodies (``neuroscribe.llm.completion``) and the retry policy's view of
an unreadable answer: retried like a dropped connection, then a typed ``protocol`` failure, never
a bare ``ValueError``."""

from __future__ import annotations

import asyncio
import json

import pytest

from neuroscribe.llm.completion import ProtocolError, parse_completion
from neuroscribe.llm.recorder import BackendError, RetryCounter
from neuroscribe.llm.retry import RetryPolicy, call_with_retries, classify


def body(**fields) -> str:
    base = {
        "id": "c",
        "object": "chat.completion",
        "choices": [
            {"index": 1, "message": {"role": "assistant", "content": "second"}},
            {"index": 0, "message": {"role": "assistant", "content": "first"}},
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 5},
    }
    base.update(fields)
    return json.dumps(base)


def test_a_good_body_gives_texts_in_index_order_and_usage():
    r = parse_completion(body(), logprobs=False)
    assert r.texts == ("first", "second")
    assert (r.prompt_tokens, r.completion_tokens) == (11, 5)
    assert r.logprobs is None


def test_logprobs_are_read_per_choice_and_missing_ones_are_empty():
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": "yes"},
        "logprobs": {"content": [
            {"token": "yes", "logprob": -0.1, "top_logprobs": [
                {"token": "yes", "logprob": -0.1}, {"token": "no", "logprob": -2.5}]}
        ]},
    }
    bare = {"index": 1, "message": {"role": "assistant", "content": "no"}}
    r = parse_completion(body(choices=[choice, bare], usage=None), logprobs=True)
    assert r.logprobs is not None and r.logprobs[1] == ()
    [step] = r.logprobs[0]
    assert step.token == "yes" and step.top == (("yes", -0.1), ("no", -2.5))
    assert (r.prompt_tokens, r.completion_tokens) == (0, 0)


def test_null_content_is_an_empty_text_not_a_failure():
    choice = {"index": 0, "message": {"role": "assistant", "content": None, "refusal": "no"}}
    assert parse_completion(body(choices=[choice]), logprobs=False).texts == ("",)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (body()[:40], "not JSON"),  # a truncated 200
        ("", "not JSON"),
        ("<html><body>502 Bad Gateway</body></html>", "not JSON"),
        ("[1, 2]", "JSON list"),
        (body(choices=[]), "no choices"),
        (json.dumps({"object": "chat.completion"}), "no choices"),
        (json.dumps({"error": {"message": "overloaded"}}), "no choices"),
        (body(choices=["text"]), "not an object"),
        (body(choices=[{"index": 0}]), "no message"),
        (body(choices=[{"index": 0, "message": {"content": ["a"]}}]), "not text"),
        (body(choices=[{"index": "0", "message": {"content": "a"}}]), "index"),
    ],
)
def test_unreadable_bodies_are_protocol_errors(raw, says):
    with pytest.raises(ProtocolError, match=says) as e:
        parse_completion(raw, logprobs=False)
    assert e.value.kind == "protocol"
    assert not isinstance(e.value, ValueError)  # the flows read ValueError as bad input


def test_malformed_logprobs_are_protocol_errors():
    choice = {"index": 0, "message": {"content": "yes"},
              "logprobs": {"content": [{"token": "yes", "top_logprobs": None}]}}
    with pytest.raises(ProtocolError, match="malformed logprobs"):
        parse_completion(body(choices=[choice]), logprobs=True)


def test_a_credential_in_an_unreadable_body_is_not_quoted():
    with pytest.raises(ProtocolError) as e:
        parse_completion('{"echo": "Authorization: Bearer sk-abcdefgh12345678"', logprobs=False)
    assert "sk-abcdefgh12345678" not in str(e.value)


def _run(attempt, retries: int = 3) -> tuple[object, RetryCounter]:
    counter = RetryCounter()

    async def no_sleep(_s: float) -> None:
        return None

    result = asyncio.run(call_with_retries(
        attempt, RetryPolicy(max_retries=retries), counter, lambda e: f"m: {e}", sleep=no_sleep,
    ))
    return result, counter


@pytest.mark.parametrize(
    "error",
    [ProtocolError("truncated"), json.JSONDecodeError("Expecting value", "{", 1), KeyError("x")],
)
def test_unreadable_answers_are_retried_then_succeed(error):
    assert classify(error) == ("protocol", True)
    left = [error, error]

    async def attempt():
        if left:
            raise left.pop()
        return "ok"

    result, counter = _run(attempt)
    assert result == "ok" and counter.retries == 2


def test_retries_run_out_on_unreadable_answers_into_a_typed_failure():
    async def attempt():
        raise json.JSONDecodeError("Unterminated string", '{"a": "', 6)

    with pytest.raises(BackendError) as e:
        _run(attempt, retries=2)
    assert e.value.kind == "protocol" and "Unterminated string" in str(e.value)
    assert not isinstance(e.value, ValueError)

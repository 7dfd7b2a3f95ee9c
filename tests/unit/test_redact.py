"""Credentials never stored: ``neuroscribe.redact`` on its own, and where the LLM layer applies it
(the message of every ``BackendError``, the ledger's ``error`` and ``response``)."""

from __future__ import annotations

import json

import pytest

from neuroscribe.llm.base import ChatRequest, ChatResponse, Ledger, Message
from neuroscribe.llm.cache import CHAT
from neuroscribe.llm.recorder import BackendError, CallRecorder, chat_params
from neuroscribe.redact import REDACTED, public_url, redact

KEY = "sk-proj-A1b2C3d4E5f6G7h8"


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        (f"Authorization: Bearer {KEY}", KEY, "Authorization: Bearer"),
        ('{"headers": {"authorization": "Bearer abc.def-ghi"}}', "abc.def-ghi", '"authorization"'),
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz", "Basic"),
        ("proxy-authorization=opaque-value-123", "opaque-value-123", "proxy-authorization="),
        ("the upstream said: bearer t0ken-value", "t0ken-value", "bearer"),
        (f"Incorrect API key provided: {KEY}.", KEY, "Incorrect API key provided"),
        ("sk-test-SECRET-4f9c2a7e was rejected", "SECRET-4f9c2a7e", "was rejected"),
        ("GET /v1/chat?api_key=abc123&model=m", "abc123", "model=m"),
        ("https://host/v1?key=abc123&token=t9&x=1", "abc123", "x=1"),
        ("x-api-key: k3y-value", "k3y-value", "x-api-key:"),
        ('{"password": "hunter2", "user": "ann"}', "hunter2", '"user": "ann"'),
        ("connect to https://ann:hunter2@proxy.local:3128/v1 failed", "hunter2", "proxy.local"),
    ],
)
def test_redact_removes_the_secret_and_keeps_the_rest(text, secret, kept):
    out = redact(text)
    assert secret not in out
    assert REDACTED in out
    assert kept in out


@pytest.mark.parametrize(
    "text",
    [
        "The model `gpt-x` does not exist",
        "Words about keys: the key to the door, a monkey: x",
        "the task-assessment step and risk-taking",
        'Colour words such as "red" and "blue".',
        '{"activations": [{"token": " key", "activation": 3}]}',
        "",
    ],
)
def test_redact_leaves_ordinary_text_alone(text):
    assert redact(text) == text


def test_redacted_json_stays_json():
    body = json.dumps({"error": {"message": f"bad header Authorization: Bearer {KEY}",
                                 "echo": {"api_key": KEY, "url": "https://u:p@h/x?key=z"}}})
    out = redact(body)
    assert KEY not in out and ":p@" not in out
    assert json.loads(out)["error"]["message"].endswith(REDACTED)


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://user:pw@example.com:8443/v1?key=1#frag", "https://example.com:8443/v1"),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
        ("http://tok@[::1]:80/v1/", "http://[::1]:80/v1/"),
        ("https://api.example.com/v1?api-version=2024", "https://api.example.com/v1"),
        (None, None),
    ],
)
def test_public_url_drops_userinfo_query_and_fragment(url, public):
    assert public_url(url) == public


def test_public_url_of_something_that_is_not_a_url_is_still_safe():
    out = public_url(f"not a url?key={KEY}")
    assert out is not None and KEY not in out and "?" not in out
    bad_port = public_url("http://u:secret@host:99999999/v1")
    assert bad_port is not None and "secret" not in bad_port


def test_backend_errors_are_redacted_when_made():
    e = BackendError(f"openai/m: AuthenticationError: Authorization: Bearer {KEY}", "client_error")
    assert KEY not in str(e) and e.kind == "client_error"


def _recorder(ledger: Ledger) -> CallRecorder:
    return CallRecorder("fake/redact", ledger, "explain", None)


def test_the_ledger_stores_errors_and_responses_redacted():
    ledger = Ledger()
    rec = _recorder(ledger)
    request = ChatRequest(messages=(Message(role="user", content="hi"),))

    def fails():
        raise RuntimeError(f"echoed header: Authorization: Bearer {KEY}")  # not a BackendError

    with pytest.raises(RuntimeError):
        rec.run("h1", chat_params(request), fails, CHAT)
    answer = ChatResponse(texts=(f"use the key {KEY} here",))
    got = rec.run("h2", chat_params(request), lambda: answer, CHAT)
    failed, ok = ledger.calls
    assert failed.status == "failed" and failed.error.startswith("RuntimeError: ")
    assert KEY not in failed.error and REDACTED in failed.error
    assert KEY not in ok.response and REDACTED in ok.response
    assert got.texts == (f"use the key {REDACTED} here",)  # what a cache hit would give
    assert rec.run("h2", chat_params(request), lambda: answer, CHAT) == got
    assert ledger.calls[-1].cache_hit


def test_the_prefilter_never_skips_a_pattern_that_would_match():
    # Every pattern run on every text (no prefilter) must give what redact gives.
    import random

    from neuroscribe.redact import _PATTERNS

    def unfiltered(text: str) -> str:
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    rng = random.Random(0)
    pieces = ["Authorization: ", "PROXY-AUTHORIZATION=", "Bearer ", "BEARER ", KEY, "SK-abcdefghij",
              "rk-12345678x", "x-API-KEY: ", "Access_Token=", "client-secret: ", "PASSWD=",
              "?KEY=", "&Sig=", "https://u:", "p4ss@", "host/", '"', " ", "abc", "{", "}", "\n",
              "pa\u017f\u017fword=", "AUTHOR\u0130ZATION: ", "Bear\u0131r ", "\u212a"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))
        assert redact(text) == unfiltered(text), text

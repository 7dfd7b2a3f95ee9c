"""Reading a chat-completions body into a ``ChatResponse``, or a typed protocol failure.

The ``openai`` backend takes the body of a 200 answer as text and reads it here, rather than
letting the client cast it to ``ChatCompletion``: the client's cast is lenient (a body without
``choices`` becomes a model whose attribute access fails later), returns a plain string for a
non-JSON content type, and raises ``json.JSONDecodeError`` for a truncated body. That error is a
``ValueError``, which the flows' task-retry rule reads as bad input, so a proxy that cut one
answer short ended the whole run. Here every way a body can be unreadable is one exception,
``ProtocolError`` (a ``BackendError`` of kind ``protocol``), which the retry policy retries like
a dropped connection and the stages turn into a typed failure of that call.

Pure: no I/O, tested on hand-written bodies.
"""

from __future__ import annotations

import json
from typing import Any

from neuroscribe.llm.base import ChatResponse, TokenLogprobs
from neuroscribe.llm.recorder import BackendError

SNIPPET = 120
"""Characters of an unreadable body quoted in the error (redacted like every error)."""


class ProtocolError(BackendError):
    """A 200 answer whose body is not a chat completion (truncated, not JSON, wrong shape)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "protocol")


def parse_completion(body: str, logprobs: bool) -> ChatResponse:
    """The completion texts (one per choice, by ``index``), the per-token ``top_logprobs`` when
    ``logprobs``, and the token usage of a chat-completions body. Raises ``ProtocolError``."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise ProtocolError(f"the body is not JSON ({e}): {_snippet(body)}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"the body is a JSON {type(data).__name__}, not an object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ProtocolError(f"the response has no choices: {_snippet(body)}")
    if not all(isinstance(c, dict) for c in choices):
        raise ProtocolError("a choice is not an object")
    ordered = sorted(choices, key=_index)
    texts = tuple(_text(c) for c in ordered)
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return ChatResponse(
        texts=texts,
        logprobs=tuple(_token_logprobs(c) for c in ordered) if logprobs else None,
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
    )


def _index(choice: dict[str, Any]) -> int:
    index = choice.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int):
        raise ProtocolError(f"a choice has the index {index!r}")
    return index


def _text(choice: dict[str, Any]) -> str:
    message = choice.get("message")
    if not isinstance(message, dict):
        raise ProtocolError("a choice has no message")
    content = message.get("content")
    if content is None:  # a refusal or a tool call: no text, which parsing reports as empty
        return ""
    if not isinstance(content, str):
        raise ProtocolError(f"a message's content is a {type(content).__name__}, not text")
    return content


def _token_logprobs(choice: dict[str, Any]) -> tuple[TokenLogprobs, ...]:
    block = choice.get("logprobs")
    content = block.get("content") if isinstance(block, dict) else None
    if not content:
        return ()  # the endpoint gave none for this choice: callers fall back to the text
    try:
        return tuple(
            TokenLogprobs(
                token=str(t["token"]),
                top=tuple((str(x["token"]), float(x["logprob"])) for x in t["top_logprobs"]),
            )
            for t in content
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ProtocolError(f"malformed logprobs ({type(e).__name__}: {e})") from None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _snippet(body: str) -> str:
    text = body[:SNIPPET].replace("\n", " ")
    return repr(text + ("..." if len(body) > SNIPPET else ""))

"""The sparse answer format of the JSON simulator: only the tokens predicted to fire.

The dense format (``simulate.json_mode``) makes the model write one entry per token, most of them
``0``: about 12 generated tokens per window token, 370-390 for a 32-token window on a
llama-server. Here the prompt numbers the tokens and the model lists only those it predicts the
unit responds to, ``{"fires": [{"index": 3, "token": " zebra", "activation": 8}, ...]}``; every
token not listed is 0. An answer costs about 8 generated tokens plus about 18 per listed token.

Each entry names its token as well as its index, so that a miscounted index can be told from a
right one: the entry lands on ``index`` when the token there matches, else on the nearest position
whose token matches (ignoring case and surrounding space). An entry whose token is nowhere in the
window is a ``bad_position`` failure (after the simulator's one repair turn), never a guess.
Several entries on one position keep the highest activation.

Pure: no I/O, tested on hand-written answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from neuroscribe.simulate.base import SimulateFailure

PROMPT = "simulate_sparse"
REPAIR_PROMPT = "simulate_sparse_repair"


class AnswerError(ValueError):
    """An answer that cannot be used; ``kind`` is the simulation's typed failure."""

    def __init__(self, kind: SimulateFailure, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class Firing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: int
    token: str
    activation: float = Field(ge=0, le=10)


class SparseAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fires: list[Firing]


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")
Answer = TypeVar("Answer", bound=BaseModel)


def read_json_answer(text: str, schema: type[Answer]) -> Answer:
    """The JSON object of an answer (code fences stripped; from its first ``{`` to its last
    ``}``) validated as ``schema``; ``AnswerError`` (``unparseable``) otherwise."""
    body = _FENCE.sub("", text.strip())
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end < start:
        raise AnswerError(SimulateFailure.UNPARSEABLE, "no JSON object in the answer")
    try:
        return schema.model_validate(json.loads(body[start : end + 1]))
    except (json.JSONDecodeError, ValidationError) as e:
        first = str(e).splitlines()[0] if isinstance(e, json.JSONDecodeError) else (
            f"{e.error_count()} invalid field(s), first: {e.errors()[0]['msg']}"
        )
        raise AnswerError(
            SimulateFailure.UNPARSEABLE, f"not valid JSON of the schema: {first}"
        ) from e


def numbered_tokens(tokens: Sequence[str]) -> str:
    """One line per token: its index, a space, the token as a JSON string (so a newline or a
    quote in the corpus stays inside its line)."""
    return "\n".join(f"{i} {json.dumps(t, ensure_ascii=False)}" for i, t in enumerate(tokens))


def sparse_schema(n_tokens: int) -> dict[str, Any]:
    """JSON schema of the answer, strict-mode compatible, at most one entry per token."""
    item = {
        "type": "object",
        "properties": {
            "index": {"type": "integer"},
            "token": {"type": "string"},
            "activation": {"type": "number"},
        },
        "required": ["index", "token", "activation"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"fires": {"type": "array", "items": item, "maxItems": n_tokens}},
        "required": ["fires"],
        "additionalProperties": False,
    }


def max_answer_tokens(n_tokens: int) -> int:
    """Room for every token to be listed (about 18 generated tokens per entry)."""
    return 32 + 20 * n_tokens


def _same(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def locate(tokens: Sequence[str], index: int, token: str) -> int | None:
    """The position an entry means: ``index`` when its token matches there, else the nearest
    position whose token matches (the lower one on a tie); None when none does."""
    if 0 <= index < len(tokens) and _same(tokens[index], token):
        return index
    matches = [j for j, t in enumerate(tokens) if _same(t, token)]
    if not matches:
        return None
    return min(matches, key=lambda j: (abs(j - index), j))


def parse_sparse(text: str, tokens: Sequence[str]) -> list[float]:
    """One value per token from a sparse answer (0 where nothing is listed). Raises
    ``AnswerError`` (``unparseable``: not JSON of the schema; ``bad_position``: an entry whose
    token is not in the window)."""
    answer = read_json_answer(text, SparseAnswer)
    values = [0.0] * len(tokens)
    for k, entry in enumerate(answer.fires):
        at = locate(tokens, entry.index, entry.token)
        if at is None:
            raise AnswerError(
                SimulateFailure.BAD_POSITION,
                f"entry {k}: the token {json.dumps(entry.token)} is not in the text "
                f"(index {entry.index}; the tokens are numbered 0 to {len(tokens) - 1})",
            )
        values[at] = max(values[at], entry.activation)
    return values

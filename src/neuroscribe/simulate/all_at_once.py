"""All-at-once simulation from next-token distributions (in-process models).

One prompt per window states the explanation and then lists the window's tokens, one per line,
as ``token<TAB>unknown``. In a single forward pass the backend gives the next-token distribution
right after every tab; the prediction for a token is the expected digit under that distribution
renormalised over "0".."9", rescaled to 0-10 (x 10/9).

Why digits 0-9 and not 0-10: SmolLM2's tokenizer splits "10" into "1","0", so "10" is not one
next token (delphi reads a 0-9 scale for the same reason). Why renormalise: after "unknown"
placeholders only ~10% of the mass falls on digits (DESIGN.md); that mass is kept, per token, in
the ledger row of the call (its ``response`` holds the digit probabilities).

Alignment is by construction: the simulator writes each subject token itself (tabs and newlines
escaped), so there is exactly one tab, hence one prediction, per subject token.

All windows of one explanation go to the backend together (``distributions_batch``): the
in-process backend runs their shared prefix (instructions, worked example, explanation) once and
the token tables in batched forward passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from neuroscribe.explain.render import escape_token
from neuroscribe.llm.base import Backend, BatchDistributions, Message
from neuroscribe.llm.recorder import BackendError
from neuroscribe.prompts import Prompt, load_prompt
from neuroscribe.records import Explanation, Simulation, Window
from neuroscribe.simulate.base import (
    SCALE_MAX,
    SimulateFailure,
    SimulatorBase,
    failed_simulation,
    ok_simulation,
)

PROMPT = "simulate_all_at_once"
DIGITS = tuple(str(d) for d in range(10))
PLACEHOLDER = "unknown"


def render_table(tokens: Sequence[str]) -> tuple[str, list[int]]:
    """The token table and, for each token, the character offset just after its tab."""
    lines, offsets, pos = [], [], 0
    for t in tokens:
        head = escape_token(t) + "\t"
        offsets.append(pos + len(head))
        line = head + PLACEHOLDER
        lines.append(line)
        pos += len(line) + 1  # the newline
    return "\n".join(lines), offsets


def expected_values(dists: Sequence[dict[str, float]]) -> list[float] | None:
    """Expected digit per position, renormalised over the digits and rescaled to 0-10; None if
    some position has no mass on any digit."""
    out = []
    for d in dists:
        mass = sum(d.get(k, 0.0) for k in DIGITS)
        if not mass > 0:
            return None
        ev = sum(int(k) * d.get(k, 0.0) for k in DIGITS) / mass
        out.append(ev * SCALE_MAX / 9)
    return out


def distributions_batch(
    backend: Backend, queries: Sequence[tuple[str, Sequence[int]]], candidates: Sequence[str]
) -> list[list[dict[str, float]] | Exception]:
    """``next_token_distributions`` of every ``(prompt, positions)`` query: batched where the
    backend can (``BatchDistributions``), else one call each. A query's ``BackendError`` or
    ``ValueError`` (no token boundary at a position) is its entry; other errors propagate."""
    if isinstance(backend, BatchDistributions):
        return backend.next_token_distributions_batch(queries, candidates)
    out: list[list[dict[str, float]] | Exception] = []
    for prompt, positions in queries:
        try:
            out.append(backend.next_token_distributions(prompt, positions, candidates))
        except (BackendError, ValueError) as e:
            out.append(e)
    return out


class AllAtOnceSimulator(SimulatorBase):
    """``local/...`` (or a ``fake/...`` with distributions)."""

    def __init__(self, name: str, backend: Backend, prompt: Prompt | None = None) -> None:
        if not backend.capabilities.prompt_distributions:
            raise ValueError(f"{name}: all-at-once simulation needs prompt distributions")
        self.name = name
        self.backend = backend
        self.prompt = prompt or load_prompt(PROMPT)
        self.max_concurrency = 1
        """One explanation's windows at a time, in order: consecutive prompts share their prefix,
        whose keys and values the in-process backend reuses."""

    async def asimulate(
        self, explanation: Explanation, windows: Sequence[Window]
    ) -> list[Simulation]:
        """``simulate`` in a worker thread, so the event loop stays free while the model runs."""
        return await asyncio.to_thread(self.simulate, explanation, windows)

    def prompt_text(self, explanation: str, tokens: Sequence[str]) -> tuple[str, list[int]]:
        """The full prompt (chat template applied) and the offsets to read, one per token."""
        table, offsets = render_table(tokens)
        messages = self.prompt.render_messages(explanation=explanation, table=table)
        text = self._format(messages)
        if not text.endswith(table):
            raise ValueError(f"{self.name}: the chat template changed the token table")
        base = len(text) - len(table)
        return text, [base + o for o in offsets]

    def _format(self, messages: tuple[Message, ...]) -> str:
        return self.backend.format_chat(messages, True)

    def simulate(self, explanation: Explanation, windows: Sequence[Window]) -> list[Simulation]:
        """Every window of the explanation, their prompts sent to the backend together."""
        ref = self.prompt.ref

        def failed(window: Window, kind: SimulateFailure) -> Simulation:
            return failed_simulation(explanation, self.name, window, ref, kind)

        if explanation.status != "ok" or not explanation.text:
            return [failed(w, SimulateFailure.NO_EXPLANATION) for w in windows]
        text = explanation.text
        asked = [w for w in windows if w.tokens]
        answers = distributions_batch(
            self.backend, [self.prompt_text(text, w.tokens) for w in asked], DIGITS
        )
        by_window = {id(w): a for w, a in zip(asked, answers, strict=True)}
        out = []
        for w in windows:
            answer = by_window.get(id(w))
            if answer is None:
                out.append(ok_simulation(explanation, self.name, w, ref, []))
            elif isinstance(answer, BackendError):
                out.append(failed(w, SimulateFailure.BACKEND_ERROR))
            elif isinstance(answer, Exception) or len(answer) != len(w.tokens):
                # ValueError: no token boundary at a tab, the tokenizer merged across it
                out.append(failed(w, SimulateFailure.ALIGNMENT))
            else:
                values = expected_values(answer)
                if values is None:
                    out.append(failed(w, SimulateFailure.NO_DIGIT_MASS))
                else:
                    out.append(ok_simulation(explanation, self.name, w, ref, values))
        return out

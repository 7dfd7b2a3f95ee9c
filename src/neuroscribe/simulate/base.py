"""The simulator interface, failure kinds and ids shared by all simulators."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

from neuroscribe.ids import content_hash
from neuroscribe.records import Explanation, PromptRef, Simulation, Window

SCALE_MAX = 10.0
"""Predictions are on OpenAI's 0-10 scale whatever scale the prompt uses."""


class SimulateFailure(StrEnum):
    """Typed reasons a simulation failed (``Simulation.failure``); never stored as zeros."""

    NO_EXPLANATION = "no_explanation"
    """The explanation itself failed; there is nothing to simulate from."""
    BACKEND_ERROR = "backend_error"
    """The call failed (network, server); the error text is in the ledger."""
    UNPARSEABLE = "unparseable"
    """The answer was not JSON of the required shape (after one repair turn)."""
    WRONG_LENGTH = "wrong_length"
    """The answer had a different number of values than the window has tokens."""
    BAD_POSITION = "bad_position"
    """A sparse answer listed a token that is not in the window (``simulate.sparse``)."""
    ALIGNMENT = "alignment"
    """Prompt positions could not be matched to model tokens (all-at-once)."""
    NO_DIGIT_MASS = "no_digit_mass"
    """The model put no probability on any digit at some token (all-at-once)."""


class Simulator(Protocol):
    name: str
    max_concurrency: int
    """Above 1, ``simulate_units`` hands this simulator single windows, pooled across
    explanations and units, that many at once; at 1 it hands one explanation's windows at a time
    (in-process simulators batch them)."""

    def simulate(self, explanation: Explanation, windows: Sequence[Window]) -> list[Simulation]:
        """One simulation per window, predictions one per subject token on the 0-10 scale."""
        ...

    async def asimulate(
        self, explanation: Explanation, windows: Sequence[Window]
    ) -> list[Simulation]:
        """``simulate`` as a coroutine on the shared event loop (``llm.fanout.fan_out``)."""
        ...


def simulation_id(
    explanation_id: str, simulator: str, window_id: str, prompt: PromptRef | None
) -> str:
    return content_hash(explanation_id, simulator, window_id, prompt.sha if prompt else None)


def ok_simulation(
    explanation: Explanation,
    simulator: str,
    window: Window,
    prompt: PromptRef | None,
    predictions: Sequence[float],
) -> Simulation:
    if len(predictions) != len(window.tokens):  # alignment is an invariant, not a hope
        raise AssertionError(
            f"{simulator}: {len(predictions)} predictions for {len(window.tokens)} tokens"
        )
    sid = simulation_id(explanation.explanation_id, simulator, window.window_id, prompt)
    return Simulation(
        simulation_id=sid,
        explanation_id=explanation.explanation_id,
        simulator=simulator,
        window_id=window.window_id,
        predictions=tuple(float(p) for p in predictions),
        prompt=prompt,
    )


def failed_simulation(
    explanation: Explanation,
    simulator: str,
    window: Window,
    prompt: PromptRef | None,
    failure: SimulateFailure,
) -> Simulation:
    sid = simulation_id(explanation.explanation_id, simulator, window.window_id, prompt)
    return Simulation(
        simulation_id=sid,
        explanation_id=explanation.explanation_id,
        simulator=simulator,
        window_id=window.window_id,
        status="failed",
        failure=str(failure),
        prompt=prompt,
    )

"""The simulator interface, failure kinds and ids shared by all simulators."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

import numpy as np

from neuroscribe.ids import content_hash
from neuroscribe.llm.base import in_unit
from neuroscribe.llm.fanout import fan_out
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


class BasicSimulator(Protocol):
    """What a simulator plug-in must implement (``SimulatorPlugin.make`` returns one)."""

    name: str
    max_concurrency: int
    """Above 1, ``simulate_many`` hands this simulator single windows, pooled across
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


class Simulator(BasicSimulator, Protocol):
    """What the stages call (``make_simulator`` returns one): a simulator with the batch
    members. ``SimulatorBase`` gives their defaults; a plug-in's ``BasicSimulator`` that does
    not derive from it gets them through ``OneJobAtATime``."""

    @property
    def batch_jobs(self) -> int:
        """(explanation, windows) jobs the stages hand ``simulate_batch`` at once; the
        progress advances by each call."""
        ...

    def simulate_batch(
        self, jobs: Sequence[tuple[Explanation, Sequence[Window]]]
    ) -> list[list[Simulation]]:
        """``simulate`` of every (explanation, windows) job, in order, in one call."""
        ...


BATCH_JOBS = 512
"""``batch_jobs`` of the in-process baselines, which batch their work across units."""


def simulate_many(
    simulator: BasicSimulator, jobs: Sequence[tuple[Explanation, Sequence[Window]]]
) -> list[list[Simulation]]:
    """``simulator.simulate(explanation, windows)`` for every job, in order. A simulator with a
    ``max_concurrency`` above 1 (an endpoint) gets every (explanation, window) pair of every job
    from one pool of that size, so concurrency is not capped by the windows of one unit; the
    others (in-process) take one job at a time."""
    if simulator.max_concurrency > 1:
        parts = [(i, e, [w]) for i, (e, ws) in enumerate(jobs) for w in ws]
    else:
        parts = [(i, e, list(ws)) for i, (e, ws) in enumerate(jobs)]
    done = fan_out(
        lambda p: in_unit(p[1].unit_key, simulator.asimulate(p[1], p[2])),  # calls: its unit's
        parts,
        simulator.max_concurrency,
    )
    out: list[list[Simulation]] = [[] for _ in jobs]
    for (i, _, _), sims in zip(parts, done, strict=True):
        out[i].extend(sims)
    return out


class SimulatorBase(ABC):
    """The batch members' defaults: ``simulate_batch`` is ``simulate_many`` (an endpoint's
    windows pooled across jobs under its concurrency, an in-process model one job at a time),
    ``batch_jobs`` twice the concurrency. Simulators that batch across units themselves
    override both."""

    name: str
    max_concurrency: int

    @abstractmethod
    def simulate(self, explanation: Explanation, windows: Sequence[Window]) -> list[Simulation]:
        """As ``BasicSimulator.simulate``."""

    @abstractmethod
    async def asimulate(
        self, explanation: Explanation, windows: Sequence[Window]
    ) -> list[Simulation]:
        """As ``BasicSimulator.asimulate``."""

    @property
    def batch_jobs(self) -> int:
        return 2 * self.max_concurrency

    def simulate_batch(
        self, jobs: Sequence[tuple[Explanation, Sequence[Window]]]
    ) -> list[list[Simulation]]:
        return simulate_many(self, jobs)


class OneJobAtATime(SimulatorBase):
    """A plug-in's simulator that implements only ``BasicSimulator``, with the batch defaults
    of ``SimulatorBase`` (``make_simulator`` wraps it; the plug-in implements nothing new)."""

    def __init__(self, simulator: BasicSimulator) -> None:
        self.inner = simulator
        self.name = simulator.name
        self.max_concurrency = simulator.max_concurrency

    def simulate(self, explanation: Explanation, windows: Sequence[Window]) -> list[Simulation]:
        return self.inner.simulate(explanation, windows)

    async def asimulate(
        self, explanation: Explanation, windows: Sequence[Window]
    ) -> list[Simulation]:
        return await self.inner.asimulate(explanation, windows)


def with_batch_members(simulator: BasicSimulator) -> Simulator:
    """``simulator`` itself when it derives from ``SimulatorBase`` (it declares its batch
    members), else wrapped in ``OneJobAtATime``."""
    return simulator if isinstance(simulator, SimulatorBase) else OneJobAtATime(simulator)


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


def as_stored(simulation: Simulation) -> Simulation:
    """The simulation as the warehouse gives it back: predictions rounded to 32-bit floats."""
    rounded = np.asarray(simulation.predictions, dtype=np.float32).tolist()
    return simulation.model_copy(update={"predictions": tuple(rounded)})


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

"""Simulators by name: what a simulator plug-in is, and the factories and name checks that read
``registry.SIMULATORS``.

A plug-in makes the simulator bound to one annotator name and, when it can, that simulator's
fuzz judge; when it cannot, it says why (``no_fuzz``), and every fuzz kind of its explanations
is stored as NULL with that reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from neuroscribe.config import AnnotatorConfig, SimulateConfig
from neuroscribe.llm.base import Ledger
from neuroscribe.records import Explanation, Window
from neuroscribe.registry import SIMULATORS
from neuroscribe.score.fuzz import FUZZ_KINDS
from neuroscribe.simulate.base import BasicSimulator, Simulator, with_batch_members
from neuroscribe.simulate.fuzz import (
    BasicFuzzJudge,
    FuzzItem,
    FuzzJudge,
    FuzzJudgeBase,
    FuzzVerdict,
    judge_with_batch_members,
)

SimulatorFactory = Callable[
    [str, SimulateConfig, Ledger | None, AnnotatorConfig | None], BasicSimulator
]
"""``(name, simulate config, ledger, annotator config) -> BasicSimulator`` (a
``SimulatorBase`` to declare its own batch members)."""
FuzzJudgeFactory = Callable[
    [str, SimulateConfig, Ledger | None, AnnotatorConfig | None], BasicFuzzJudge
]


@dataclass(frozen=True)
class SimulatorPlugin:
    """An entry of ``registry.SIMULATORS``."""

    make: SimulatorFactory
    fuzz_judge: FuzzJudgeFactory | None = None
    """Makes this simulator's fuzz judge; None when it cannot judge marked windows."""
    no_fuzz: str = field(default="")
    """Why there is no fuzz judge (stored as the reason of NULL fuzz scores)."""


class NoFuzzJudge(FuzzJudgeBase):
    """The judge of a simulator that cannot fuzz: no verdicts, every fuzz kind unavailable."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.unavailable = {kind: reason for kind in FUZZ_KINDS}

    def judge(
        self, explanation: Explanation, items: Sequence[FuzzItem], windows: Mapping[str, Window]
    ) -> list[FuzzVerdict]:
        return []


def simulator_plugin(name: str) -> SimulatorPlugin:
    return SIMULATORS.get_as(name, SimulatorPlugin)


def make_simulator(
    name: str,
    cfg: SimulateConfig,
    ledger: Ledger | None = None,
    annotator: AnnotatorConfig | None = None,
) -> Simulator:
    """The simulator named ``backend/model``; ValueError naming the valid ones otherwise.
    ``annotator`` (``RunConfig.annotators.get(name)``) sets temperature, concurrency, timeouts,
    retries and prices of LLM simulators. A plug-in's simulator that does not derive from
    ``SimulatorBase`` gets its defaults (one job at a time)."""
    return with_batch_members(simulator_plugin(name).make(name, cfg, ledger, annotator))


def make_fuzz_judge(
    name: str,
    cfg: SimulateConfig,
    ledger: Ledger | None = None,
    annotator: AnnotatorConfig | None = None,
) -> FuzzJudge:
    """The fuzz judge of the simulator named ``backend/model`` (``NoFuzzJudge`` with the
    plug-in's reason when it has none). A plug-in's judge that does not derive from
    ``FuzzJudgeBase`` gets its defaults (one job at a time)."""
    plugin = simulator_plugin(name)
    if plugin.fuzz_judge is None:
        return NoFuzzJudge(name, plugin.no_fuzz or f"{name} has no fuzz judge")
    return judge_with_batch_members(plugin.fuzz_judge(name, cfg, ledger, annotator))

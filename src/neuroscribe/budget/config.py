"""The ``[budget]`` section of the run config: which annotators are escalated, and when.

Kept apart from ``neuroscribe.config`` (which composes it into ``RunConfig``, and is near its
size limit); it imports nothing of neuroscribe but its errors.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from neuroscribe.errors import BadInput


class BudgetConfig(BaseModel):
    """Cheap annotators first, the LLM only where it can change the answer. Unset
    (``escalate`` empty): every annotator on every unit. Hashed only when set."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    escalate: list[str] = Field(default_factory=list)
    """Escalated explainers and simulators: names or patterns (``local/*``, ``openai/*``) of
    configured annotators. They run only on escalated units, after the others (the cheap ones)
    have explained, simulated and scored every unit."""
    below: float = Field(default=0.3, json_schema_extra={"cli": "escalate-below"})
    """Escalate a unit when its best cheap headline score (``registry.HEADLINE_SCORE``: the
    best cheap explainer with the best cheap simulator) is below this, or undefined (-1: only
    undefined scores and ``disagree`` escalate)."""
    disagree: float | None = Field(default=None, ge=0.0)
    """Also escalate a unit when its cheap explainers' best headline scores differ by at least
    this (unset: never for that reason)."""

    ci_width: float | None = Field(default=None, gt=0.0)
    """Adaptive scoring: each (explanation, simulator) simulates its held-out top and random
    windows ``ci_step`` of each at a time, and stops once the bootstrap interval of its headline
    score is narrower than this (unset: every window, as without a budget). The calibration and
    out-of-distribution windows are simulated in the first step. ``scores.n_windows`` says how
    many windows each score rests on (with ``score.bootstrap = 0``, no interval: every window)."""
    ci_step: int = Field(default=2, ge=1)
    """Top and random held-out windows added per step of adaptive scoring (``ci_width``)."""
    ci_min_windows: int = Field(default=10, ge=1)
    """Adaptive scoring never stops a pair before this many of its top and random held-out
    windows are simulated: a bootstrap interval over a few windows can be narrow by chance
    (with 4 windows, pairs stopped on intervals that the full split did not bear out)."""

    def escalated(self, name: str) -> bool:
        """Whether the annotator ``name`` is escalated (matches a name or pattern)."""
        return any(fnmatch.fnmatchcase(name, p) for p in self.escalate)

    def split(self, names: Sequence[str]) -> tuple[list[str], list[str]]:
        """``names`` as (cheap, escalated), each in the order given."""
        return (
            [n for n in names if not self.escalated(n)],
            [n for n in names if self.escalated(n)],
        )

    def check(self, explainers: Sequence[str], simulators: Sequence[str], engine: str) -> None:
        """``BadInput`` unless every name or pattern of ``escalate`` names a configured
        annotator, at least one explainer and one simulator stay cheap (the decision needs their
        scores), and the fan-out runs locally."""
        if not self.escalate:
            return
        for pattern in self.escalate:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in [*explainers, *simulators]):
                raise BadInput(
                    f"budget.escalate '{pattern}' names no configured annotator (explainers: "
                    f"{', '.join(explainers)}; simulators: {', '.join(simulators)})"
                )
        for kind, names in (("explainer", explainers), ("simulator", simulators)):
            if not self.split(names)[0]:
                raise BadInput(
                    f"budget.escalate names every {kind}: at least one must stay cheap, since "
                    "the decision to escalate a unit reads the cheap annotators' scores"
                )
        if engine != "local":
            raise BadInput('budget.escalate needs engine.kind = "local"')

"""The explainer interface, failure kinds and ids shared by all explainers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from neuroscribe.ids import content_hash
from neuroscribe.records import Explanation, PromptRef, Split, UnitExamples, UnitWindow, Window

if TYPE_CHECKING:
    from neuroscribe.config import AnnotatorConfig, ExplainConfig
    from neuroscribe.llm.base import Ledger


class ExplainFailure(StrEnum):
    """Typed reasons an explanation sample failed (``Explanation.failure``)."""

    EMPTY = "empty"
    """The completion was empty after cleaning."""
    UNPARSEABLE = "unparseable"
    """The completion held no sentence (no words, or the examples echoed back)."""
    BACKEND_ERROR = "backend_error"
    """The call failed (network, server); the error text is in the ledger."""
    MISSING_SAMPLE = "missing_sample"
    """The backend returned fewer samples than requested."""
    NO_EXAMPLES = "no_examples"
    """The unit has no explain window with a positive activation."""


class Explainer(Protocol):
    name: str
    """``backend/model`` as named in the config."""
    max_concurrency: int
    """Units ``explain_units`` may have in flight at once (the backend's limit; 1 without one)."""

    def explain(
        self, unit: UnitExamples, windows: Mapping[str, Window], n: int, seed: int
    ) -> list[Explanation]:
        """Explanations of ``unit`` from its ``Split.EXPLAIN`` windows only."""
        ...

    async def aexplain(
        self, unit: UnitExamples, windows: Mapping[str, Window], n: int, seed: int
    ) -> list[Explanation]:
        """``explain`` as a coroutine on the shared event loop (``llm.fanout.fan_out``)."""
        ...


@dataclass(frozen=True)
class ExplainerPlugin:
    """An entry of ``registry.EXPLAINERS``."""

    make: Callable[[str, ExplainConfig, Ledger | None, AnnotatorConfig | None], Explainer]
    """``(name, explain config, ledger, annotator config) -> Explainer``: the explainer bound
    to one annotator name."""


def explain_windows(
    unit: UnitExamples, windows: Mapping[str, Window]
) -> list[tuple[UnitWindow, Window]]:
    """The unit's explain windows with their tokens; nothing else is shown. Order: random
    windows (rank -1), top windows by rank, then windows sampled from activation bins below the
    top (``collect.n_quantile``), highest bin (rank -2) first."""
    shown = sorted(unit.in_splits(Split.EXPLAIN), key=_shown_order)
    missing = [w.window_id for w in shown if w.window_id not in windows]
    if missing:
        raise KeyError(f"unit {unit.unit.key}: explain windows not given: {missing[:3]}")
    for uw in shown:
        if len(uw.activations) != len(windows[uw.window_id].tokens):
            raise ValueError(f"window {uw.window_id}: activations and tokens differ in length")
    return [(uw, windows[uw.window_id]) for uw in shown]


def _shown_order(w: UnitWindow) -> tuple[int, int, str]:
    group = 0 if w.rank == -1 else 1 if w.rank >= 0 else 2
    return group, abs(w.rank), w.window_id


def explanation_id(
    unit: UnitExamples,
    explainer: str,
    prompt: PromptRef | None,
    sample_index: int,
    params: Mapping[str, Any],
) -> str:
    """Content hash of (unit key, explainer, prompt sha, sample index, params). ``params`` holds
    the sampling settings and a hash of the rendered input, so new data gives a new id."""
    return content_hash(
        unit.unit.key, explainer, prompt.sha if prompt else None, sample_index, dict(params)
    )


def make_explanation(
    unit: UnitExamples,
    explainer: str,
    prompt: PromptRef | None,
    sample_index: int,
    params: Mapping[str, Any],
    text: str | None = None,
    failure: ExplainFailure | None = None,
) -> Explanation:
    """An ok explanation (``text``) or a failed one (``failure``), never both."""
    if (text is None) == (failure is None):
        raise ValueError("give exactly one of text and failure")
    return Explanation(
        explanation_id=explanation_id(unit, explainer, prompt, sample_index, params),
        unit_key=unit.unit.key,
        explainer=explainer,
        sample_index=sample_index,
        status="ok" if failure is None else "failed",
        text=text,
        failure=str(failure) if failure is not None else None,
        prompt=prompt,
    )

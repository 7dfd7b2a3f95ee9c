"""Immutable records passed between stages.

Every stage is a plain function from these records to these records. Later records point at
earlier ones by id. Each record has a stable JSON form (``model_dump_json``) and round-trips.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from neuroscribe.ids import content_hash


class Record(BaseModel):
    """Base for all records: frozen, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Subject(Record):
    """The model whose units are explained."""

    name: str
    """What the user gave: a hub name, a local path or an embedded alias."""
    weights_hash: str
    """Hash of the weight files (or of the state dict for models built in memory)."""
    architecture: str
    n_layers: int

    @property
    def subject_id(self) -> str:
        return self.make_id(self.name, self.weights_hash)

    @staticmethod
    def make_id(name: str, weights_hash: str) -> str:
        return f"{name}@{weights_hash[:12]}"


class UnitId(Record):
    """One neuron or one SAE feature: (subject, site, index), plus the SAE when there is one."""

    subject_id: str
    site: str
    """Canonical site, for example ``layers.6.mlp`` or ``layers.6.resid``."""
    index: int = Field(ge=0)
    sae_id: str | None = None
    """Path and content hash of the sparse autoencoder, for SAE features."""

    @property
    def key(self) -> str:
        sae = f"/sae={self.sae_id}" if self.sae_id else ""
        return f"{self.subject_id}/{self.site}{sae}/{self.index}"


class Window(Record):
    """A fixed-length run of tokens cut from one document of the corpus."""

    window_id: str
    corpus_id: str
    doc_id: str
    start: int
    token_ids: tuple[int, ...]
    tokens: tuple[str, ...]
    """Each token decoded on its own, as shown to annotators."""

    @staticmethod
    def make_id(corpus_id: str, doc_id: str, start: int, token_ids: tuple[int, ...]) -> str:
        return content_hash(corpus_id, doc_id, start, token_ids)


class Split(StrEnum):
    """Held-out splits. A window belongs to at most one split of a given unit."""

    EXPLAIN = "explain"
    """Shown to the explainer."""
    VALIDATE = "validate"
    """Used to pick the best of several sampled explanations; never reported."""
    CALIBRATE = "calibrate"
    """Used to fit the linear map from simulated to true activations."""
    SCORE_TOP = "score_top"
    """Held-out top-activating windows that scores are reported on."""
    SCORE_RANDOM = "score_random"
    """Held-out random windows (including ones where the unit is silent)."""
    SCORE_OOD = "score_ood"
    """Held-out windows of a second corpus, when one is given."""


class UnitWindow(Record):
    """One window's activations for one unit, with the split it was assigned to."""

    window_id: str
    split: Split
    rank: int
    """Rank of the window among the unit's top windows (by max activation); -1 for random ones."""
    activations: tuple[float, ...]

    @property
    def max_activation(self) -> float:
        return max(self.activations) if self.activations else 0.0


class UnitStats(Record):
    """Summary statistics of a unit over every token of the corpus."""

    n_tokens: int
    max: float
    mean: float
    firing_rate: float
    """Share of tokens where the activation is above the firing threshold."""
    quantiles: tuple[float, ...]
    """Activation values at the quantiles named in the run config."""
    dead: bool
    """True when the unit never fires on the corpus; dead units are not explained."""


class UnitExamples(Record):
    """What collection yields for one unit: its statistics and its windows by split."""

    unit: UnitId
    stats: UnitStats
    windows: tuple[UnitWindow, ...]

    def in_splits(self, *splits: Split) -> list[UnitWindow]:
        return [w for w in self.windows if w.split in splits]


class PromptRef(Record):
    """Which prompt file produced an output."""

    name: str
    version: str
    sha: str


class Explanation(Record):
    """One explanation of one unit, or the typed failure to produce one."""

    explanation_id: str
    unit_key: str
    explainer: str
    """Annotator name, ``backend/model``; ``control/shuffled`` for the shuffled control."""
    sample_index: int = 0
    status: Literal["ok", "failed"] = "ok"
    text: str | None = None
    failure: str | None = None
    """Failure kind when ``status == "failed"`` (for example ``empty``, ``unparseable``)."""
    prompt: PromptRef | None = None
    selected: bool = True
    """False for samples that lost the best-of-n selection on the validation split."""
    validation_score: float | None = None


class Simulation(Record):
    """A simulator's per-token predictions for one explanation on one window."""

    simulation_id: str
    explanation_id: str
    simulator: str
    window_id: str
    status: Literal["ok", "failed"] = "ok"
    predictions: tuple[float, ...] = ()
    """Predicted activations on the simulator's 0-10 scale, one per subject token."""
    failure: str | None = None
    prompt: PromptRef | None = None


class Score(Record):
    """One score of one explanation by one simulator."""

    explanation_id: str
    simulator: str
    kind: str
    """For example ``corr_top_random``, ``corr_random``, ``ev_calibrated``."""
    value: float | None
    reason: str | None = None
    """Why ``value`` is undefined, when it is."""
    n_tokens: int
    n_windows: int
    ci_low: float | None = None
    ci_high: float | None = None


class Agreement(Record):
    """An agreement statistic between annotators, for one unit or over all units."""

    unit_key: str | None
    """None for statistics over all units."""
    kind: str
    annotators: tuple[str, ...]
    value: float | None
    reason: str | None = None
    n: int
    """Number of items (tokens or units) the statistic rests on."""

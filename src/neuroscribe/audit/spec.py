"""What an audit plants and what it found: immutable records passed between its steps."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PlantKind = Literal["word", "concept"]


class AuditRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AuditSpec(AuditRecord):
    """The audit's own settings (the command's options; not part of the run config's hash)."""

    plants: int = Field(default=16, ge=1)
    """Units to plant (live units of the site, drawn at random with ``seed``)."""
    kind: PlantKind = "word"
    """``word``: each unit fires on one word of the corpus; ``concept``: on any of 3-5 words."""
    triggers: tuple[str, ...] | None = None
    """Trigger words to plant (word plants); None: drawn from the corpus."""
    concepts: dict[str, tuple[str, ...]] | None = None
    """Concepts to plant (name -> words); None: the built-in list."""
    unplanted: int | None = Field(default=None, ge=0)
    """Unplanted live units collected alongside, for comparison; None: as many as planted."""
    similarity: float = Field(default=0.5, ge=-1.0, le=1.0)
    """A concept counts as recovered when the explanation's MiniLM cosine similarity to the
    concept's words (joined by commas) reaches this, or when it names one of them."""
    seed: int = 0
    """Seed of the choice of units and triggers."""


class Plant(AuditRecord):
    """One trigger to plant: a word, or a concept's words, and the tokens that spell them."""

    kind: PlantKind
    name: str
    """The word, or the concept's name."""
    words: tuple[str, ...]
    """The words an explanation may name (present in the corpus as whole-word tokens)."""
    token_ids: tuple[int, ...]
    n_windows: int
    """Corpus windows (of those collected) that hold the trigger."""


class AuditPlan(AuditRecord):
    """Checked before anything is written: the site, and the triggers drawn from the corpus."""

    spec: AuditSpec
    site: str
    layer: int
    width: int
    """MLP width of the site before planting."""
    plants: tuple[Plant, ...]


class PlantedUnit(AuditRecord):
    unit: int
    plant: Plant
    relocated_to: int
    """Where the unit's original neuron lives in the copy."""
    auroc: float
    """How well the planted unit separates its trigger on the planting sample."""
    trigger_median: float
    """Median activation at the trigger positions of the planting sample."""
    trigger_spread: float | None
    """Std / mean of the activation at those positions (0: the same at every trigger; None:
    that mean is not positive)."""
    max_other: float
    """Largest |activation| at the sample's other positions: how far from 0 the unit strays
    where its trigger is not."""
    outlier_triggers: int
    """Trigger positions at outlier positions of the sample, planted quiet
    (``neuroscribe.surgery.plant``)."""


class PlantedCopy(AuditRecord):
    """A saved planted copy of the subject: an ordinary local model folder."""

    folder: str
    subject: str
    """The original subject's name."""
    subject_weights_hash: str
    units: tuple[PlantedUnit, ...]
    unplanted: tuple[int, ...]
    """Live units left as they were, collected for comparison."""
    function_change: float
    """Largest |change| of the final hidden states and logits, original vs the saved and
    reloaded copy, on a sample of the corpus windows."""
    function_windows: int
    """Windows that figure was measured on."""

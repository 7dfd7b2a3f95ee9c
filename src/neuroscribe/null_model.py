"""The random-model null (``[controls] random_model``): the subject re-initialised by its model
class's own init, seeded with ``collect.seed``, so that every trained unit's score can be read
against the scores of the same units of a model that learned nothing (Heap et al., 2025).

The copy is saved once under the cache (``neuroscribe.copies``), in a folder named by the
subject's weights hash and the seed: a repeated run finds it, and its pipeline run then reuses the
collection and every LLM call already stored. Its run uses the trained run's config with the copy
as the subject and the same units, corpus, annotators and scores; the warehouse links the two runs
(``null_models``) and compares them (views ``null_percentiles``, ``null_comparison``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from neuroscribe.config import ControlsConfig, RunConfig
from neuroscribe.copies import copy_subject_config, editable_subject, save_copy, saved_record
from neuroscribe.errors import BadInput
from neuroscribe.ids import content_hash
from neuroscribe.models import cache_dir
from neuroscribe.surgery import reinitialised_copy

RECORD_FILE = "neuroscribe_null.json"
METHOD = "reinitialised"
"""How the copy is made: ``surgery.reinitialised_copy`` (the class's own init, seeded)."""


class NullCopy(BaseModel):
    """A saved re-initialised copy of the subject: an ordinary local model folder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    folder: str
    subject: str
    """The trained subject's name."""
    subject_weights_hash: str
    seed: int
    """The seed of the initialisation (``collect.seed`` of the trained run)."""
    method: str = METHOD


def check_null(cfg: RunConfig) -> None:
    """Bad input for the null, before anything is written: an SAE is trained on the subject's
    activations, so it does not read a re-initialised copy's."""
    if cfg.controls.random_model and cfg.collect.sae:
        raise BadInput(
            "controls.random_model re-initialises the subject's own neurons; it cannot be used "
            "with an SAE (collect.sae), which was trained on the trained subject's activations"
        )


def null_copy(cfg: RunConfig) -> NullCopy:
    """The saved re-initialised copy of ``cfg``'s subject, seeded with ``collect.seed`` (made
    once, then reused)."""
    loaded = editable_subject(cfg)
    seed = cfg.collect.seed
    folder = cache_dir() / "null_models" / content_hash(loaded.weights_hash, seed, METHOD)
    found = saved_record(folder, RECORD_FILE, NullCopy)
    if found is not None:
        return found
    fresh = reinitialised_copy(loaded.model, seed)

    def describe(saved: Path) -> NullCopy:
        return NullCopy(
            folder=str(folder),
            subject=cfg.subject.model,
            subject_weights_hash=loaded.weights_hash,
            seed=seed,
        )

    return save_copy(folder, fresh, loaded.tokenizer, RECORD_FILE, describe)


def null_config(cfg: RunConfig, copy: NullCopy) -> RunConfig:
    """The null run's config: ``cfg`` with the copy as its subject, the same units, corpus,
    annotators and scores, and no null of its own."""
    return copy_subject_config(cfg, copy.folder).model_copy(update={"controls": ControlsConfig()})

"""Sections of the run config kept apart from ``neuroscribe.config`` (which re-exports them)
so that module stays readable: the base ``Section``, ``[compare]`` and ``[engine]``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class CompareConfig(Section):
    """Comparing subjects unit by unit on one corpus (``neuroscribe compare``)."""

    models: list[str] = Field(default_factory=list)
    """The subjects compared (two or more): hub names, local folders, GGUF files or the embedded
    alias, sharing a tokenizer; sites: ``collect.site``. With ``saes``: the one model they read."""
    saes: list[str] = Field(default_factory=list)
    """SAE folders (SAELens layout), two or more of one site: compared latent by latent."""
    threshold: float = Field(default=0.5, ge=-1.0, le=1.0)
    """A unit has a partner in the other subject when its best partner's activation correlation
    (for SAE latents by decoder: cosine) is at least this; else new (in B) or lost (from A)."""
    cka_budget_mb: int = Field(default=256, ge=0)
    """Memory for the whole-corpus statistics of linear CKA between every pair of compared sites
    (the layer x layer heatmap); when the pairs need more, pairs of other sites get the
    minibatch estimate instead (``site_comparisons.cka_method``)."""
    similarity: float = Field(default=0.7, ge=-1.0, le=1.0)
    """A unit of B with a partner is changed when its best explanation and its partner's have a
    MiniLM cosine similarity below this (same concept reworded: about 0.9; two different
    single-token explanations: 0.4-0.6)."""
    score_change: float = Field(default=0.2, ge=0.0)
    """A unit of B with a partner is also changed when its best headline score and its
    partner's differ by at least this."""
    max_stat_tokens: int = Field(default=25_000, ge=0)
    """Token positions the statistics (correlations, CKA) are accumulated on, about. When the
    windows read (at most ``collect.max_windows``; the corpus is cut once ahead to count them)
    hold more tokens, every k-th position of each window is used (k = their tokens // this; the
    first position turns with each window, so every position is sampled alike): the statistics'
    cost stops growing with the corpus, while every window still goes through the models. 0:
    every position (exact; the statistics then cost about as much as the forward passes)."""
    explain: int = Field(default=4, ge=0)
    """Units of the top of the diff (new, lost, and partnered units with their partners, by
    activation change 1 - r) explained and scored by the configured explainers and simulators
    through the pipeline, where not already explained (0: none)."""


class EngineConfig(Section):
    """Where the explain / simulate / score fan-out runs (``flows/engine.py``). Left out of the
    config hash: where the work runs never changes what it computes."""

    kind: Literal["local", "dask"] = "local"
    """``local``: every stage in the flow's own process. ``dask``: chunks of units go to Dask
    workers (Prefect's ``DaskTaskRunner``, package ``prefect-dask``); the flow's process stays
    the only warehouse writer."""
    workers: int = Field(default=2, ge=1)
    """Worker processes of the local Dask cluster started for a run (without ``address``)."""
    address: str | None = None
    """An existing Dask scheduler (e.g. ``tcp://10.0.0.5:8786``) whose workers do the work;
    ``workers`` is then ignored."""
    chunk_units: int | None = Field(default=None, ge=1)
    """Units per Dask task: each task gets these units with their windows, and returns their
    records. By default (None) the chunks shrink (``flows.cluster.chunk_sizes``): each takes
    ``1 / (2 x worker threads)`` of the units left, down to an eighth of a worker's share; large
    chunks first, small ones last, so the workers finish together."""

    @field_validator("address")
    @classmethod
    def _address_not_empty(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("engine.address must name a scheduler, e.g. tcp://host:8786")
        return v

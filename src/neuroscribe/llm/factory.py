"""LLM backends by name (``backend/model``): built and checked through ``registry.LLM_BACKENDS``.

Each backend module exports a ``PLUGIN`` (a ``BackendPlugin``) that knows how to build the
backend bound to one annotator and how to check it before a run; this module only splits the
name, sets up the ``CallRecorder`` every backend shares, and names the valid backends when a
name is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from neuroscribe.errors import BadInput
from neuroscribe.llm.base import Backend, Ledger
from neuroscribe.llm.recorder import CallRecorder, split_name
from neuroscribe.registry import LLM_BACKENDS

if TYPE_CHECKING:
    from neuroscribe.config import AnnotatorConfig

__all__ = ["BackendPlugin", "check_backend", "is_llm_backend", "make_backend"]


@dataclass(frozen=True)
class BackendPlugin:
    """One LLM backend, as registered in ``registry.LLM_BACKENDS``."""

    make: Callable[[str, str, CallRecorder, str, AnnotatorConfig | None], Backend]
    """``(annotator name, model, recorder, local dtype, annotator config) -> Backend``."""
    check: Callable[[str, str, AnnotatorConfig | None], None]
    """``(annotator name, model, annotator config)``: raise a ValueError naming what is wrong
    with this annotator before a run starts (cheap: no model is loaded)."""


def is_llm_backend(backend: str) -> bool:
    """``backend`` (the part before ``/``) names a registered LLM backend."""
    return "/" not in backend and backend in LLM_BACKENDS


def _plugin(backend: str, name: str) -> BackendPlugin:
    if not is_llm_backend(backend):
        valid = ", ".join(LLM_BACKENDS.names())
        raise BadInput(
            f"unknown LLM backend '{backend}' in '{name}'; valid LLM backends: {valid}"
        )
    return LLM_BACKENDS.get_as(backend, BackendPlugin)


def make_backend(
    name: str,
    ledger: Ledger | None = None,
    purpose: str = "explain",
    prompt_sha: str | None = None,
    local_dtype: str = "float32",
    annotator: AnnotatorConfig | None = None,
) -> Backend:
    """Build the LLM backend named ``backend/model``, with its per-annotator settings from the
    run config (``RunConfig.annotators[name]``); ValueError for an unknown backend."""
    backend, model = split_name(name)
    plugin = _plugin(backend, name)
    prices = None
    if annotator is not None and (
        annotator.cost_in_per_1k is not None or annotator.cost_out_per_1k is not None
    ):
        prices = (annotator.cost_in_per_1k or 0.0, annotator.cost_out_per_1k or 0.0)
    recorder = CallRecorder(name, ledger, purpose, prompt_sha, prices=prices)
    return plugin.make(name, model, recorder, local_dtype, annotator)


def check_backend(name: str, annotator: AnnotatorConfig | None = None) -> None:
    """Preflight for one annotator, before a run starts: ``openai`` makes one 1-token call and
    raises ``PreflightError`` (a ValueError) for an unreachable endpoint, a wrong key or an
    unknown model; ``fake`` must be registered; ``local`` models must resolve to files (not
    loaded). Non-LLM annotators (``baseline``, ``embedding``) need nothing."""
    backend, model = split_name(name)
    if is_llm_backend(backend):
        _plugin(backend, name).check(name, model, annotator)

"""What ``neuroscribe compare`` runs: subjects unit by unit (``compare.models``,
``stream.compare_subjects``) or, with ``compare.saes``, SAEs of one site latent by latent
(``saes.compare_sae_set``); and the checks of its input, made before anything is recorded."""

from __future__ import annotations

from neuroscribe.checks import check_annotators
from neuroscribe.compare.saes import compare_sae_set, load_saes
from neuroscribe.compare.stream import Comparison, compare_subjects
from neuroscribe.compare.subjects import load_subjects
from neuroscribe.config import RunConfig


def check_compare(cfg: RunConfig) -> None:
    """Every check of a comparison's input (the subjects or the SAEs, the corpus), and, when the
    top of the diff is to be explained (``compare.explain``), of its explainers and
    simulators. Raises a ``BadInput`` naming the problem."""
    if cfg.compare.saes:
        load_saes(cfg)
    else:
        load_subjects(cfg)
    if cfg.compare.explain:
        check_annotators(cfg)


def run_comparison(cfg: RunConfig) -> Comparison:
    """The comparison pass of ``cfg``: of its SAEs when it names some, else of its subjects."""
    return compare_sae_set(cfg) if cfg.compare.saes else compare_subjects(cfg)

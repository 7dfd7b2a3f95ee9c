"""Every check of the user's input, run once per command before a run is recorded.

Each failure raises an error whose message names the problem (a ``ValueError`` subclass: the
CLI turns it into one line and exit status 2). The checks load what they must (the model, to
resolve sites and units; the SAE), and the loads are cached per process, so the stages that
follow reuse them.
"""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from neuroscribe.collect import CollectError, validate_inputs
from neuroscribe.collect.checkpoint import checkpoint_seconds
from neuroscribe.collect.corpus import open_corpus
from neuroscribe.collect.forward import plan_units
from neuroscribe.collect.sae import load_sae
from neuroscribe.collect.windows import check_window_size, cut_windows, special_frame
from neuroscribe.config import EngineConfig, RunConfig
from neuroscribe.errors import BadInput
from neuroscribe.llm.factory import check_backend
from neuroscribe.models import load_model, resolve_source
from neuroscribe.null_model import check_null
from neuroscribe.registry import EXPLAINERS, SIMULATORS


def check_flows(cfg: RunConfig, flows: Iterable[str]) -> None:
    """The checks that the flows ``run``, ``collect``, ``score`` and ``agree`` (any of them, as
    ``neuroscribe serve`` deploys several) need before they start."""
    flows = set(flows)
    if "run" in flows:
        check_null(cfg)
    if flows & {"run", "collect"}:
        preflight(cfg, annotators="run" in flows)
    if "score" in flows and "run" not in flows:
        check_annotators(cfg, explainers=False)
    if flows & {"run", "score"}:
        check_engine(cfg.engine)
        cfg.budget.check(cfg.explain.explainers, cfg.simulate.simulators, cfg.engine.kind)


def check_engine(engine: EngineConfig) -> None:
    """With ``kind = "dask"``: ``prefect-dask`` is installed, and the scheduler at ``address``
    (when given) accepts a connection."""
    if engine.kind != "dask":
        return
    if importlib.util.find_spec("prefect_dask") is None:
        raise BadInput(
            'engine.kind = "dask" needs the prefect-dask package: pip install prefect-dask'
        )
    if not engine.address:
        return
    parts = urlsplit(engine.address if "://" in engine.address else f"tcp://{engine.address}")
    if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
        raise BadInput(
            f"engine.address {engine.address!r} is not a scheduler address like tcp://host:8786"
        )
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=5):
            pass
    except OSError as e:
        raise BadInput(
            f"cannot reach the Dask scheduler at {engine.address}: {e.strerror or e}"
        ) from e


def preflight(cfg: RunConfig, annotators: bool = True) -> None:
    """The corpus, the model's files, every annotator (when ``annotators``), then (loading the
    model) the site, units and window length, and that the corpora yield a window."""
    validate_inputs(cfg)
    try:  # $NEUROSCRIBE_CHECKPOINT_SECONDS, read again when collection starts
        checkpoint_seconds(None)
    except ValueError as e:
        raise BadInput(str(e)) from None
    resolve_source(cfg.subject.model, cfg.subject.gguf_file)
    if annotators:
        check_annotators(cfg)
    loaded = load_model(cfg.subject.model, cfg.subject.gguf_file, cfg.subject.dtype)
    sae = load_sae(cfg.collect.sae) if cfg.collect.sae else None
    plan_units(cfg, loaded.model, sae)
    check_window_size(loaded.model, cfg.collect.window_tokens, special_frame(loaded.tokenizer))
    for label, source in (
        ("corpus", cfg.corpus.source),
        ("out-of-distribution corpus", cfg.corpus.ood_source),
    ):
        if source:
            _check_yields_a_window(label, source, cfg, loaded.tokenizer)


def check_annotators(cfg: RunConfig, explainers: bool = True) -> None:
    """Names first (no I/O; the registry's tables), then one cheap call per endpoint annotator:
    an unreachable endpoint, a wrong key or an unknown model fails here, not on every unit."""
    names = [*cfg.explain.explainers] if explainers else []
    for name in names:
        EXPLAINERS.check(name)
    simulators = [*cfg.simulate.simulators, cfg.explain.select_with]
    for name in simulators:
        SIMULATORS.check(name)
    for name in dict.fromkeys([*names, *simulators]):
        check_backend(name, cfg.annotators.get(name))


def _check_yields_a_window(label: str, source: str, cfg: RunConfig, tokenizer: object) -> None:
    """Read the corpus only until its first full window: an empty corpus fails here, before a
    run is recorded, instead of after collection started."""
    docs = open_corpus(source, cfg.corpus.text_field, cfg.corpus.max_documents)
    if next(iter(cut_windows(docs, tokenizer, cfg.collect.window_tokens, 1)), None) is None:
        raise CollectError(
            f"{label} '{source}' yields no window of {cfg.collect.window_tokens} tokens "
            f"({docs.n_documents} documents read, {docs.skipped} skipped as non-UTF-8 or "
            "empty); use a larger corpus or a smaller collect.window_tokens"
        )

"""Simulators: predict a unit's per-token activations from an explanation alone.

``make_simulator(name, cfg)`` picks the method from the backend's capabilities, never from the
model's name: next-token distributions inside the prompt -> all-at-once (exact, one forward pass
per window); otherwise JSON answers. ``baseline/lexical`` and ``embedding/all-minilm-l6-v2``
need no LLM. ``simulate_all`` runs a simulator over many explanations, concurrently up to the
annotator's limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from neuroscribe.config import AnnotatorConfig, SimulateConfig
from neuroscribe.llm.aio import LOOP, map_bounded
from neuroscribe.llm.base import Ledger
from neuroscribe.llm.registry import LLM_BACKENDS, make_backend, split_name
from neuroscribe.prompts import load_prompt
from neuroscribe.records import Explanation, Simulation, Window
from neuroscribe.simulate.all_at_once import AllAtOnceSimulator
from neuroscribe.simulate.base import SimulateFailure, Simulator
from neuroscribe.simulate.embedding import EMBEDDING_SIMULATOR, EmbeddingSimulator
from neuroscribe.simulate.json_mode import JsonSimulator
from neuroscribe.simulate.lexical import LexicalSimulator

BASELINE_SIMULATORS = ("baseline/lexical",)
EMBEDDING_SIMULATORS = (EMBEDDING_SIMULATOR,)

__all__ = [
    "SimulateFailure", "Simulator", "check_simulator_name", "make_simulator", "simulate_all",
    "simulator_names",
]

FIXED_SIMULATORS = {"baseline": BASELINE_SIMULATORS, "embedding": EMBEDDING_SIMULATORS}
"""Backends without a model choice: only these names."""


def simulator_names() -> tuple[str, ...]:
    """Every valid simulator name, as users write them (``<model>`` is any model)."""
    return (*(f"{b}/<model>" for b in LLM_BACKENDS if b != "fake"), *BASELINE_SIMULATORS,
            *EMBEDDING_SIMULATORS, "fake/<script>")


def check_simulator_name(name: str) -> None:
    """ValueError naming ``name`` and listing the valid simulators unless ``make_simulator``
    knows it (no I/O; the preflight and the factory ask the same tables)."""
    backend, sep, model = name.partition("/")
    fixed = FIXED_SIMULATORS.get(backend)
    known = name in fixed if fixed is not None else backend in LLM_BACKENDS and model
    if not (sep and known):
        backends = ", ".join((*LLM_BACKENDS, *FIXED_SIMULATORS))
        raise ValueError(
            f"unknown simulator '{name}': names are backend/model (valid: {backends}); "
            f"valid simulators: {', '.join(simulator_names())}"
        )


def make_simulator(
    name: str,
    cfg: SimulateConfig,
    ledger: Ledger | None = None,
    annotator: AnnotatorConfig | None = None,
) -> Simulator:
    """The simulator named ``backend/model``; ValueError naming the valid backends otherwise.
    ``annotator`` (``RunConfig.annotators.get(name)``) sets temperature, concurrency, timeouts,
    retries and prices of LLM simulators."""
    check_simulator_name(name)
    backend, _ = split_name(name)
    if backend == "baseline":
        return LexicalSimulator()
    if backend == "embedding":
        return EmbeddingSimulator()
    # The backend is built before the prompt is known to be right for it; both are cheap.
    probe = make_backend(name, None, "simulate", local_dtype=cfg.local_dtype, annotator=annotator)
    if probe.capabilities.prompt_distributions:
        prompt = load_prompt("simulate_all_at_once")
        backend = make_backend(name, ledger, "simulate", prompt.sha, cfg.local_dtype, annotator)
        return AllAtOnceSimulator(name, backend, prompt)
    prompt = load_prompt("simulate_json")
    backend = make_backend(name, ledger, "simulate", prompt.sha, cfg.local_dtype, annotator)
    temperature = annotator.temperature if annotator and annotator.temperature is not None else 0.0
    return JsonSimulator(name, backend, prompt, temperature=temperature)


def simulate_all(
    simulator: Simulator, jobs: Sequence[tuple[Explanation, Sequence[Window]]]
) -> list[list[Simulation]]:
    """``simulator.simulate(explanation, windows)`` for every job, in order. A simulator with a
    ``max_concurrency`` above 1 (an endpoint) gets every (explanation, window) pair of every job
    from one pool of that size, so concurrency is not capped by the windows of one unit; the
    others (in-process, batched) take one job at a time. A simulator whose backend runs on the
    event loop (``asynchronous``) gets the pairs there, as coroutines, instead of threads."""
    workers = getattr(simulator, "max_concurrency", 1)
    asynchronous = getattr(simulator, "asynchronous", False)
    if workers <= 1 and not asynchronous:
        return [simulator.simulate(e, ws) for e, ws in jobs]
    pairs = [(i, e, w) for i, (e, ws) in enumerate(jobs) for w in ws]
    if asynchronous:
        done = LOOP.run(map_bounded(
            lambda p: simulator.asimulate_one(p[1], p[2]),  # type: ignore[attr-defined]
            pairs, workers,
        ))
    else:
        with ThreadPoolExecutor(max_workers=min(workers, max(1, len(pairs)))) as pool:
            done = list(pool.map(lambda p: simulator.simulate(p[1], [p[2]])[0], pairs))
    out: list[list[Simulation]] = [[] for _ in jobs]
    for (i, _, _), sim in zip(pairs, done, strict=True):
        out[i].append(sim)
    return out

"""The simulator plug-in of every LLM backend (``local/*``, ``openai/*``, ``fake/*``).

The method is picked from the backend's capabilities, never from the model's name: next-token
distributions inside the prompt -> all-at-once (exact, one forward pass per window); otherwise
JSON answers, in the annotator's ``simulate_format`` (sparse by default). Its fuzz judge is
``simulate.fuzz_llm.LLMFuzzJudge``.
"""

from __future__ import annotations

from neuroscribe.config import AnnotatorConfig, SimulateConfig
from neuroscribe.llm.base import Ledger
from neuroscribe.llm.factory import make_backend
from neuroscribe.prompts import load_prompt
from neuroscribe.simulate.all_at_once import AllAtOnceSimulator
from neuroscribe.simulate.base import Simulator
from neuroscribe.simulate.fuzz_llm import BATCH_PROMPT as FUZZ_BATCH_PROMPT
from neuroscribe.simulate.fuzz_llm import PROMPT as FUZZ_PROMPT
from neuroscribe.simulate.fuzz_llm import LLMFuzzJudge
from neuroscribe.simulate.json_mode import FORMATS, JsonSimulator
from neuroscribe.simulate.plugin import SimulatorPlugin


def _temperature(annotator: AnnotatorConfig | None) -> float:
    return annotator.temperature if annotator and annotator.temperature is not None else 0.0


def make_llm_simulator(
    name: str,
    cfg: SimulateConfig,
    ledger: Ledger | None = None,
    annotator: AnnotatorConfig | None = None,
) -> Simulator:
    """All-at-once when the backend has prompt distributions, else JSON answers."""
    # The backend is built before the prompt is known to be right for it; both are cheap.
    probe = make_backend(name, None, "simulate", local_dtype=cfg.local_dtype, annotator=annotator)
    if probe.capabilities.prompt_distributions:
        prompt = load_prompt("simulate_all_at_once")
        backend = make_backend(name, ledger, "simulate", prompt.sha, cfg.local_dtype, annotator)
        return AllAtOnceSimulator(name, backend, prompt)
    answer_format = (annotator.simulate_format if annotator else None) or "sparse"
    prompt = load_prompt(FORMATS[answer_format].prompt)
    backend = make_backend(name, ledger, "simulate", prompt.sha, cfg.local_dtype, annotator)
    return JsonSimulator(
        name, backend, prompt, temperature=_temperature(annotator), answer_format=answer_format
    )


def make_llm_fuzz_judge(
    name: str,
    cfg: SimulateConfig,
    ledger: Ledger | None = None,
    annotator: AnnotatorConfig | None = None,
) -> LLMFuzzJudge:
    batch = (annotator.fuzz_batch if annotator else None) or 1
    if batch > 1:  # only where the backend can answer a batch in a schema (see LLMFuzzJudge)
        caps = make_backend(name, None, "fuzz", local_dtype=cfg.local_dtype,
                            annotator=annotator).capabilities
        batch = batch if caps.json_schema and not caps.prompt_distributions else 1
    prompt = load_prompt(FUZZ_BATCH_PROMPT if batch > 1 else FUZZ_PROMPT)
    llm = make_backend(name, ledger, "fuzz", prompt.sha, cfg.local_dtype, annotator)
    return LLMFuzzJudge(name, llm, prompt, _temperature(annotator), batch=batch)


PLUGIN = SimulatorPlugin(make=make_llm_simulator, fuzz_judge=make_llm_fuzz_judge)
"""The entry of ``registry.SIMULATORS`` for every LLM backend."""

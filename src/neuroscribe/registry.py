"""Every plug-in's name becomes code here, and only here.

One ``Registry`` per kind of plug-in. An entry maps a name to the object that implements it, or
to its import path (``"package.module:attribute"``) resolved on first use, so that listing names
(for checks, CLI help and docs) imports nothing heavy and the registry imports none of the
packages that implement its entries. A name is either exact (``baseline/ngram``) or a backend
pattern (``openai/*``: that backend with any model). Factories, name checks, the CLI's help and
the warehouse README's lists all read these tables; a name written as a literal elsewhere is a
smell.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar, cast

from neuroscribe.errors import BadInput

T = TypeVar("T")
U = TypeVar("U")

HEADLINE_SCORE = "corr_top_random"
"""The score kind that tables, summaries, leaderboards and the report lead with."""


class Registry(Generic[T]):
    """Names of one kind of plug-in (``kind``: "simulator", "score kind", ...) and what
    implements each. ``get`` raises ValueError naming the valid names for an unknown one."""

    def __init__(
        self,
        kind: str,
        entries: Mapping[str, T | str] | None = None,
        placeholders: Mapping[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = dict(entries or {})
        self._placeholders = dict(placeholders or {})
        """How ``names`` writes a backend's model part (``fake`` -> ``<script>``)."""

    def register(self, name: str, entry: T | str) -> None:
        """Add (or replace) ``name``; ``entry`` is the object or its ``module:attribute``."""
        self._entries[name] = entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> tuple[str, ...]:
        """Every name as users write it (a pattern ``backend/*`` reads ``backend/<model>``);
        scripted ``fake/...`` last, since only tests register scripts."""
        shown = [self._display(n) for n in self._entries]
        return (*(n for n in shown if not n.startswith("fake/")),
                *(n for n in shown if n.startswith("fake/")))

    def _display(self, name: str) -> str:
        backend, sep, model = name.partition("/")
        if sep and model == "*":
            return f"{backend}/{self._placeholders.get(backend, '<model>')}"
        return name

    def key(self, name: str) -> str:
        """The entry that serves ``name``: itself, else its backend's pattern."""
        if name in self._entries:
            return name
        backend, sep, model = name.partition("/")
        if sep and model and f"{backend}/*" in self._entries:
            return f"{backend}/*"
        valid = f"valid {self.kind}s: {', '.join(self.names())}"
        if any("/" in n for n in self._entries):  # annotators: say how names are made
            backends = ", ".join(dict.fromkeys(n.split("/")[0] for n in self._entries))
            raise BadInput(
                f"unknown {self.kind} '{name}': names are backend/model (valid: {backends}); "
                + valid
            )
        raise BadInput(f"unknown {self.kind} '{name}'; {valid}")

    def check(self, name: str) -> None:
        """ValueError naming ``name`` and the valid names unless it is known (no import)."""
        self.key(name)

    def get(self, name: str) -> T:
        key = self.key(name)
        entry = self._entries[key]
        if isinstance(entry, str):
            resolved = cast(T, _resolve(entry))  # what the path names is the caller's to check
            self._entries[key] = resolved
            return resolved
        return entry

    def get_as(self, name: str, cls: type[U]) -> U:
        """``get`` checked to be a ``cls`` (the tables hold objects of several packages and
        import none of them, so the caller names the type it expects)."""
        entry = self.get(name)
        if not isinstance(entry, cls):
            raise TypeError(f"{self.kind} '{name}' is a {type(entry).__name__}, not {cls.__name__}")
        return entry

    def __contains__(self, name: object) -> bool:
        try:
            self.key(str(name))
        except ValueError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))


def _resolve(path: str) -> object:
    module, _, attribute = path.partition(":")
    obj: object = importlib.import_module(module)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


LLM_BACKENDS: Registry[object] = Registry(
    "LLM backend",
    {
        "local": "neuroscribe.llm.local:PLUGIN",
        "openai": "neuroscribe.llm.openai_backend:PLUGIN",
        "fake": "neuroscribe.llm.fake:PLUGIN",
    },
)
"""Backends that are LLMs (``llm.factory.BackendPlugin``), by the part of a name before ``/``."""

_LLM_PATTERNS = {f"{b}/*": b for b in ("local", "openai", "fake")}

EXPLAINERS: Registry[object] = Registry(
    "explainer",
    {
        **{p: "neuroscribe.explain.llm:PLUGIN" for p in _LLM_PATTERNS},
        "baseline/ngram": "neuroscribe.explain.ngram:PLUGIN",
    },
    placeholders={"fake": "<script>"},
)
"""Explainers (``explain.ExplainerPlugin``)."""

SIMULATORS: Registry[object] = Registry(
    "simulator",
    {
        **{p: "neuroscribe.simulate.llm:PLUGIN" for p in _LLM_PATTERNS},
        "baseline/lexical": "neuroscribe.simulate.lexical:PLUGIN",
        "embedding/all-minilm-l6-v2": "neuroscribe.simulate.embedding:PLUGIN",
    },
    placeholders={"fake": "<script>"},
)
"""Simulators and their fuzz judges (``simulate.SimulatorPlugin``)."""

SCORE_KINDS: Registry[object] = Registry(
    "score kind",
    {
        HEADLINE_SCORE: "neuroscribe.score.kinds:CORR_TOP_RANDOM",
        "corr_random": "neuroscribe.score.kinds:CORR_RANDOM",
        "corr_ood": "neuroscribe.score.kinds:CORR_OOD",
        "ev_calibrated": "neuroscribe.score.kinds:EV_CALIBRATED",
        "detection_bacc": "neuroscribe.score.kinds:DETECTION_BACC",
        "detection_auroc": "neuroscribe.score.kinds:DETECTION_AUROC",
        "auprc_tokens": "neuroscribe.score.kinds:AUPRC_TOKENS",
        "auprc_windows": "neuroscribe.score.kinds:AUPRC_WINDOWS",
        "f1_calibrated": "neuroscribe.score.kinds:F1_CALIBRATED",
    },
)
"""Scores computed from simulated activations (``score.ScoreKind``), in the order they are
stored. Fuzzing's kinds come from judges' verdicts instead: ``score.fuzz.FUZZ_KINDS``."""

SAE_ACTIVATIONS: Registry[object] = Registry(
    "SAE architecture",
    {
        "standard": "neuroscribe.collect.sae:relu_activation",
        "jumprelu": "neuroscribe.collect.sae:jumprelu_activation",
        "topk": "neuroscribe.collect.sae:topk_activation",
    },
)
"""SAE encoder activations (``collect.sae.Activation``), by ``SAE.architecture``."""

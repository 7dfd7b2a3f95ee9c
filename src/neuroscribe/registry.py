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
from typing import Generic, TypeVar

T = TypeVar("T")

HEADLINE_SCORE = "corr_top_random"
"""The score kind that tables, summaries, leaderboards and the report lead with."""


class Registry(Generic[T]):
    """Names of one kind of plug-in (``kind``: "simulator", "score kind", ...) and what
    implements each. ``get`` raises ValueError naming the valid names for an unknown one."""

    def __init__(self, kind: str, entries: Mapping[str, T | str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = dict(entries or {})

    def register(self, name: str, entry: T | str) -> None:
        """Add (or replace) ``name``; ``entry`` is the object or its ``module:attribute``."""
        self._entries[name] = entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> tuple[str, ...]:
        """Every name as users write it (a pattern ``backend/*`` reads ``backend/<model>``)."""
        return tuple(n.replace("/*", "/<model>") for n in self._entries)

    def key(self, name: str) -> str:
        """The entry that serves ``name``: itself, else its backend's pattern."""
        if name in self._entries:
            return name
        backend, sep, model = name.partition("/")
        if sep and model and f"{backend}/*" in self._entries:
            return f"{backend}/*"
        raise ValueError(
            f"unknown {self.kind} '{name}'; valid {self.kind}s: {', '.join(self.names())}"
        )

    def check(self, name: str) -> None:
        """ValueError naming ``name`` and the valid names unless it is known (no import)."""
        self.key(name)

    def get(self, name: str) -> T:
        key = self.key(name)
        entry = self._entries[key]
        if isinstance(entry, str):
            entry = _resolve(entry)
            self._entries[key] = entry
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

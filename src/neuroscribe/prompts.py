"""Prompt templates stored as files, loaded with a name, a version and a content hash.

A prompt file is ``prompts/<name>.v<version>.txt``. Lines before the first section marker that
start with ``#`` are a header for readers (purpose, variables) and are not sent to the model. The
body is a list of chat messages, each introduced by a line ``=== system ===``, ``=== user ===`` or
``=== assistant ===``. Variables are ``$name`` or ``${name}`` (``string.Template``; ``$$`` is a
literal dollar). Rendering is strict both ways: a missing variable and an unused one are errors,
so a template and its caller cannot drift apart silently.

The ``sha`` is the hash of the whole file, header included, and is stored with every output.
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from neuroscribe.llm.base import Message
from neuroscribe.records import PromptRef

_FILE_RE = re.compile(r"^(?P<name>[a-z0-9_]+)\.v(?P<version>[0-9]+)\.txt$")
_SECTION_RE = re.compile(r"^=== (system|user|assistant) ===$", re.MULTILINE)


class PromptError(ValueError):
    """A prompt file that cannot be found or parsed, or a render with the wrong variables."""


@dataclass(frozen=True)
class Prompt:
    """One version of one prompt template."""

    name: str
    version: str
    sha: str
    text: str
    """The full file text (header included)."""

    @property
    def ref(self) -> PromptRef:
        return PromptRef(name=self.name, version=self.version, sha=self.sha)

    @property
    def body(self) -> str:
        """The template without its ``#`` header."""
        match = _SECTION_RE.search(self.text)
        return self.text[match.start() :] if match else _strip_header(self.text)

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(string.Template(self.body).get_identifiers())

    def render(self, **values: str) -> str:
        """Substitute every variable; fail on a missing or an unused one."""
        expected = self.variables
        missing = sorted(expected - values.keys())
        unused = sorted(values.keys() - expected)
        if missing or unused:
            raise PromptError(
                f"prompt {self.name}.v{self.version}: "
                + "; ".join(
                    part
                    for part in (
                        f"missing variables {missing}" if missing else "",
                        f"unused variables {unused}" if unused else "",
                    )
                    if part
                )
            )
        try:
            return string.Template(self.body).substitute(values)
        except ValueError as e:  # a stray "$" in the template
            raise PromptError(f"prompt {self.name}.v{self.version}: {e}") from e

    def render_messages(self, **values: str) -> tuple[Message, ...]:
        """Render, then split into chat messages at the ``=== role ===`` markers."""
        return split_messages(self.render(**values), where=f"{self.name}.v{self.version}")


def split_messages(rendered: str, where: str = "prompt") -> tuple[Message, ...]:
    """Split rendered text into messages; the blank line before each marker is not content."""
    parts = _SECTION_RE.split(rendered)
    if len(parts) < 3 or parts[0].strip():
        raise PromptError(f"{where}: the body must start with a '=== role ===' line")
    messages = []
    for role, content in zip(parts[1::2], parts[2::2], strict=True):
        messages.append(Message(role=role, content=content.strip("\n")))  # type: ignore[arg-type]
    return tuple(messages)


def _strip_header(text: str) -> str:
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        i += 1
    return "".join(lines[i:]).lstrip("\n")


def prompts_dir() -> Path:
    """The installed prompt files (wheel) or, in a source checkout, ``<repo>/prompts``."""
    try:
        packaged = resources.files("neuroscribe") / "_data" / "prompts"
        if packaged.is_dir():
            return Path(str(packaged))
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover - odd installs
        pass
    return Path(__file__).resolve().parents[2] / "prompts"


def available_prompts(directory: Path | None = None) -> dict[str, list[str]]:
    """Name -> versions (ascending, numerically) of the prompt files present."""
    found: dict[str, list[str]] = {}
    for path in sorted((directory or prompts_dir()).glob("*.txt")):
        if m := _FILE_RE.match(path.name):
            found.setdefault(m["name"], []).append(m["version"])
    return {k: sorted(v, key=int) for k, v in found.items()}


def load_prompt(name: str, directory: Path | None = None) -> Prompt:
    """Load ``name`` (latest version) or ``name.vN`` (that version)."""
    return _load(name, str(directory or prompts_dir()))


@lru_cache(maxsize=64)
def _load(name: str, directory: str) -> Prompt:
    base, _, version = name.partition(".v")
    versions = available_prompts(Path(directory)).get(base)
    if not versions:
        raise PromptError(f"no prompt named '{base}' in {directory}")
    version = version or versions[-1]
    if version not in versions:
        raise PromptError(f"prompt '{base}' has versions {versions}, not '{version}'")
    raw = (Path(directory) / f"{base}.v{version}.txt").read_bytes()
    text = raw.decode("utf-8")
    prompt = Prompt(base, version, hashlib.sha256(raw).hexdigest()[:16], text)
    split_messages(prompt.body, where=f"{base}.v{version}")  # fail at load, not at first use
    return prompt

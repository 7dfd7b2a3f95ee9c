"""Command options made from the run config: one option per field, help from its docstring.

A command decorated with ``config_options("subject", "corpus", ...)`` gains an option for every
field of those sections of ``RunConfig`` and receives the ones given as ``overrides``
(``{"collect.units": "8"}``), which ``load_config`` applies on top of the config file and
validates, so a bad value fails with the same message as in a file. An option is named after
its field (``collect.max_windows`` -> ``--max-windows``); a field name that two of the command's
sections share is prefixed with its section (``--explain-local-dtype``), and a field may name its
own flag in its metadata (``json_schema_extra={"cli": "corpus"}``), and a field naming plug-ins
its registry table (``{"registry": "SIMULATORS"}``), whose names the help lists. Lists are
comma-separated; booleans are ``--flag/--no-flag``.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from neuroscribe import registry
from neuroscribe.config import RunConfig


@dataclass(frozen=True)
class ConfigOption:
    dotted: str
    """Where the value goes: ``section.field``."""
    param: str
    """The command function's keyword for it."""
    flag: str
    annotation: Any
    help: str
    panel: str


def _members(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [a for a in get_args(annotation) if a is not type(None)]
    return [annotation]


def _is_bool(annotation: Any) -> bool:
    return _members(annotation) == [bool]


def _metavar(annotation: Any) -> str:
    names = []
    for m in _members(annotation):
        if get_origin(m) is Literal:
            names.append("|".join(map(str, get_args(m))))
        elif get_origin(m) is list:
            names.append(f"{_type_name(get_args(m)[0])},...")
        else:
            names.append(_type_name(m))
    return " or ".join(names)


def _type_name(t: Any) -> str:
    name = str(getattr(t, "__name__", t)).upper()
    return "TEXT" if name == "STR" else name


def parse_value(annotation: Any, text: str) -> Any:
    """A command-line string as the config expects it: split on commas for a list field (or a
    list-or-number field given a comma), as typed otherwise (pydantic converts it)."""
    members = _members(annotation)
    literals = [m for m in members if get_origin(m) is Literal]
    if str in members or literals and (len(literals) == len(members) or any(
        text in map(str, get_args(m)) for m in literals
    )):
        return text
    lists = [m for m in members if get_origin(m) is list]
    if lists and ("," in text or len(lists) == len(members)):
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _section_fields(section: str) -> dict[str, FieldInfo]:
    model = RunConfig.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return dict(model.model_fields)


def options_for(sections: tuple[str, ...]) -> list[ConfigOption]:
    """The options of a command taking these parts of the run config (a section, or one field
    as ``section.field``), in field order. A field's flag is the same in every command: a name
    that two sections of the whole config share is prefixed with its section."""
    every = [s for s, f in RunConfig.model_fields.items() if _is_section(f.annotation)]
    shared = Counter(name for s in every for name in _section_fields(s))
    wanted: dict[str, set[str] | None] = {}
    for part in sections:
        section, _, field_name = part.partition(".")
        if field_name:
            picked = wanted.setdefault(section, set())
            if picked is not None:
                picked.add(field_name)
        else:
            wanted[section] = None
    out = []
    for section, picked in wanted.items():
        for name, info in _section_fields(section).items():
            if picked is not None and name not in picked:
                continue
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            if "cli" in extra:
                stem = str(extra["cli"])
            else:
                stem = f"{section}_{name}" if shared[name] > 1 else name
            help_text = " ".join((info.description or "").split())
            if "registry" in extra:  # the names a plug-in field accepts, from their table
                table = getattr(registry, str(extra["registry"]))
                help_text += f" Valid: {', '.join(table.names())}."
            out.append(
                ConfigOption(
                    dotted=f"{section}.{name}",
                    param=f"{section}__{name}",
                    flag="--" + stem.replace("_", "-"),
                    annotation=info.annotation,
                    help=f"{help_text} ({section}.{name})",
                    panel=f"[{section}]",
                )
            )
    return out


def config_options(*sections: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give the decorated command one option per field of these run-config sections (or single
    ``section.field``); it is called with the given ones as ``overrides={dotted key: value}``."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        options = options_for(sections)
        hints = get_type_hints(fn, include_extras=True)
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in inspect.signature(fn).parameters.values()
            if p.name != "overrides"
        ]
        added = [
            inspect.Parameter(
                o.param,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=_option_annotation(o),
            )
            for o in options
        ]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            overrides = {}
            for o in options:
                value = kwargs.pop(o.param)
                if value is not None:
                    overrides[o.dotted] = value if _is_bool(o.annotation) else parse_value(
                        o.annotation, value
                    )
            return fn(**kwargs, overrides=overrides)

        parameters = own + added
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        return command

    return wrap


def _option_annotation(o: ConfigOption) -> Any:
    if _is_bool(o.annotation):
        name = o.flag[2:]
        return Annotated[
            bool | None,
            typer.Option(f"--{name}/--no-{name}", help=o.help, rich_help_panel=o.panel),
        ]
    return Annotated[
        str | None,
        typer.Option(o.flag, help=o.help, metavar=_metavar(o.annotation), rich_help_panel=o.panel),
    ]

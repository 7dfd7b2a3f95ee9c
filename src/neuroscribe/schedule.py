"""When ``neuroscribe serve`` runs the flows: the ``[schedule]`` section of the run config.

Kept apart from ``neuroscribe.config`` (which re-exports it) because checking a cron expression
means loading the cron parser Prefect itself uses, without importing Prefect.
"""

from __future__ import annotations

import functools
import importlib.util
import zoneinfo
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


SchedulableFlow = Literal["run", "collect", "score", "agree"]
"""Flows that ``neuroscribe serve`` can deploy: the whole pipeline and the stage flows."""


def _run_flow_only() -> list[SchedulableFlow]:
    return ["run"]


class ScheduleConfig(_Section):
    """When ``neuroscribe serve`` runs the flows. Not part of the config hash: when a run happens
    does not change what it computes."""

    cron: str | None = None
    """Cron expression (minute granularity), e.g. ``"0 3 * * 1"`` for Mondays at 03:00. Checked
    with the cron parser Prefect itself uses, so what is accepted here Prefect accepts."""
    interval_seconds: float | None = Field(default=None, gt=0)
    """Instead of ``cron``: a run every this many seconds (short cadences and tests)."""
    timezone: str = "UTC"
    """IANA time zone the cron expression is read in, e.g. ``Europe/Paris``."""
    flows: list[SchedulableFlow] = Field(default_factory=_run_flow_only, min_length=1)
    """Flows to deploy, each on this schedule: ``run`` and/or the stage flows ``collect``,
    ``score``, ``agree``."""

    @field_validator("cron")
    @classmethod
    def _cron_is_valid(cls, v: str | None) -> str | None:
        if v is not None:
            check_cron(v)
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone_is_known(cls, v: str) -> str:
        if v not in _known_timezones():
            raise ValueError(f"unknown time zone '{v}' (IANA names, e.g. UTC or Europe/Paris)")
        return v

    @field_validator("flows")
    @classmethod
    def _flows_once(cls, v: list[SchedulableFlow]) -> list[SchedulableFlow]:
        return list(dict.fromkeys(v))

    @model_validator(mode="after")
    def _one_cadence(self) -> ScheduleConfig:
        if self.cron is not None and self.interval_seconds is not None:
            raise ValueError("set schedule.cron or schedule.interval_seconds, not both")
        return self


@functools.cache
def _prefect_croniter() -> Any:
    """The ``croniter`` class that Prefect validates and runs cron schedules with: the copy
    vendored in Prefect 3 (``prefect._vendor.croniter``), else the ``croniter`` package that
    earlier Prefect 3 releases depend on. Loaded from its file without importing Prefect, whose
    settings are fixed at import and must first be set by ``flows`` (offline, log level)."""
    spec = importlib.util.find_spec("prefect")  # a top-level package: found, not imported
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "_vendor" / "croniter" / "croniter.py"
        if path.is_file():
            mod_spec = importlib.util.spec_from_file_location("_neuroscribe_croniter", path)
            assert mod_spec is not None and mod_spec.loader is not None
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
            return module.croniter
    import croniter  # type: ignore[import-not-found]

    return croniter.croniter


def check_cron(expression: str) -> None:
    """Raise ValueError unless Prefect accepts ``expression`` as a cron schedule: the same test
    as Prefect's ``validate_cron_string`` (croniter's, then no random or hashed fields)."""
    if not _prefect_croniter().is_valid(expression):
        raise ValueError(f"malformed cron expression '{expression}'")
    if any(field.casefold() in ("r", "h") for field in expression.split()):
        raise ValueError(f"random and hashed cron fields (R, H) are unsupported: '{expression}'")


@functools.cache
def _known_timezones() -> frozenset[str]:
    """The IANA names this machine knows, read once: ``available_timezones`` walks the time
    zone database on every call (about 13 ms), and every stored run config that is read back
    validates its schedule."""
    return frozenset(zoneinfo.available_timezones())

"""Deployments of the pipeline and stage flows, served on the config's schedule.

``neuroscribe serve`` checks the input, then calls ``serve_scheduled``: one deployment per flow in
``schedule.flows`` (``run``, ``collect``, ``score``, ``agree``), each a deployment of the flow
``neuroscribe-scheduled`` named after the stage, on ``schedule.cron`` (in ``schedule.timezone``) or
every ``schedule.interval_seconds``. Their parameters are JSON: the stage, the whole run config as
a dict, and the warehouse path. Every scheduled run gets a fresh run id and calls the stage's flow
(``flows.pipeline.STAGE_FLOWS``) as the CLI does, so it is recorded in the warehouse like any run
and reuses what earlier runs stored (LLM calls come from the cache).

The deployments are served against the Prefect server named by ``PREFECT_API_URL``, one flow run
at a time (DuckDB allows one writing process).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron, Interval, Schedule
from prefect.settings import PREFECT_API_URL
from prefect.types.entrypoint import EntrypointType

from flows import pipeline
from neuroscribe.config import ConfigError, RunConfig, ScheduleConfig
from neuroscribe.errors import BadInput
from neuroscribe.ids import new_run_id

FLOW_NAME = "neuroscribe-scheduled"


@flow(name=FLOW_NAME, validate_parameters=False)
def scheduled(stage: str, config: dict[str, Any], warehouse: str) -> list[str]:
    """One scheduled run of ``stage`` (``run``, ``collect``, ``score`` or ``agree``): a fresh run
    id, then that stage's flow on the config. Returns the ids the stage's flow returns."""
    if stage not in pipeline.STAGE_FLOWS:
        raise BadInput(f"unknown flow '{stage}'; use one of {', '.join(pipeline.STAGE_FLOWS)}")
    cfg = RunConfig.model_validate(config)
    return pipeline.STAGE_FLOWS[stage](cfg, warehouse, new_run_id(cfg.config_hash))


def prefect_schedule(schedule: ScheduleConfig) -> Schedule:
    """The Prefect schedule of the ``[schedule]`` section; a ConfigError when it sets none."""
    if schedule.cron is not None:
        return Cron(schedule.cron, timezone=schedule.timezone)
    if schedule.interval_seconds is not None:
        return Interval(timedelta(seconds=schedule.interval_seconds), timezone=schedule.timezone)
    raise ConfigError(
        "no schedule: set schedule.cron (or schedule.interval_seconds) in the config, "
        "or pass --cron"
    )


def build_deployments(cfg: RunConfig, warehouse: str) -> list[RunnerDeployment]:
    """One deployment of ``scheduled`` per flow in ``cfg.schedule.flows``, named
    ``neuroscribe-<stage>``, on the config's schedule."""
    schedule = prefect_schedule(cfg.schedule)
    config = cfg.model_dump(mode="json")  # no credentials in URLs (AnnotatorConfig)
    return [
        cast(  # to_deployment is sync here; its signature also allows the async form
            RunnerDeployment,
            scheduled.to_deployment(
                name=f"neuroscribe-{stage}",
                schedule=schedule,
                parameters={"stage": stage, "config": config, "warehouse": warehouse},
                description=f"neuroscribe {stage}, config {cfg.config_hash}, {warehouse}",
                tags=["neuroscribe"],
                # The module path works wherever neuroscribe is installed, whatever the directory.
                entrypoint_type=EntrypointType.MODULE_PATH,
            ),
        )
        for stage in cfg.schedule.flows
    ]


def check_server() -> str:
    """The URL of the Prefect server to serve against; a ConfigError when ``PREFECT_API_URL`` is
    unset or no server answers there (a temporary server would vanish with its schedules)."""
    url = PREFECT_API_URL.value()
    if not url:
        raise ConfigError(
            "PREFECT_API_URL is not set: start a server (`prefect server start --host 127.0.0.1`) "
            "and export PREFECT_API_URL=http://127.0.0.1:4200/api, or name a remote one"
        )
    with get_client(sync_client=True) as client:
        error = client.api_healthcheck()
    if error is not None:
        raise ConfigError(f"no Prefect server answers at {url} (PREFECT_API_URL): {error}")
    return url


def serve_scheduled(deployments: list[RunnerDeployment]) -> None:
    """Register the deployments with the server and run their scheduled flow runs until
    interrupted, one at a time (each in its own process)."""
    from prefect import serve

    serve(*deployments, limit=1)

"""The ``[schedule]`` section, the deployments built from it, and ``neuroscribe serve``'s refusals
of bad input (exit 2 with one message, before anything is served)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neuroscribe.config import ConfigError, RunConfig, check_cron, load_config

CRONS = [
    "* * * * *",
    "*/5 * * * *",
    "0 3 * * 1",
    "0 8 * * mon-fri",
    "15,45 9-17 * jan,jul *",
    "0 0 1 * *",
    "@daily",
    "61 * * * *",
    "* 24 * * *",
    "* * 32 * *",
    "* * * 13 *",
    "every monday",
    "* * * *",
    "",
    "H * * * *",
    "R * * * *",
    "0 3 * * 8",
]


def prefect_accepts(expression: str) -> bool:
    from prefect._internal.schemas.validators import validate_cron_string

    try:
        validate_cron_string(expression)
    except ValueError:
        return False
    return True


def ours_accepts(expression: str) -> bool:
    try:
        check_cron(expression)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("expression", CRONS)
def test_cron_check_agrees_with_prefect(expression):
    assert ours_accepts(expression) == prefect_accepts(expression)


def test_the_list_holds_both_kinds():
    verdicts = {ours_accepts(c) for c in CRONS}
    assert verdicts == {True, False}


@pytest.mark.parametrize(
    ("schedule", "needle"),
    [
        (
            {"cron": "61 * * * *"},
            "schedule.cron: Value error, malformed cron expression '61 * * * *'",
        ),
        ({"cron": "every monday"}, "malformed cron expression 'every monday'"),
        ({"cron": "H * * * *"}, "malformed cron expression"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"cron": "* * * * *", "interval_seconds": 5}, "not both"),
        ({"interval_seconds": 0}, "schedule.interval_seconds"),
        ({"flows": ["run", "report"]}, "schedule.flows.1"),
        ({"flows": []}, "schedule.flows"),
        ({"every": "day"}, "unknown key 'schedule.every'"),
    ],
)
def test_bad_schedule_is_a_config_error(tmp_path, schedule, needle):
    path = tmp_path / "c.toml"
    lines = ["[schedule]"] + [f"{k} = {json.dumps(v)}" for k, v in schedule.items()]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert needle in str(err.value) and str(path) in str(err.value)


def test_schedule_defaults_and_the_config_hash():
    plain = RunConfig()
    assert plain.schedule.cron is None and plain.schedule.timezone == "UTC"
    assert plain.schedule.flows == ["run"]
    timed = load_config(
        None,
        {
            "schedule.cron": "0 3 * * 1",
            "schedule.timezone": "Europe/Paris",
            "schedule.flows": ["run", "agree", "run"],
        },
    )
    assert timed.schedule.flows == ["run", "agree"]
    # When a run happens does not change what it computes: same hash, same provenance.
    assert timed.config_hash == plain.config_hash
    assert load_config(None, {"collect.units": 3}).config_hash != plain.config_hash


def test_deployments_carry_the_schedule_and_json_parameters(tmp_path):
    from prefect.types.entrypoint import EntrypointType

    from flows import deployments

    cfg = load_config(
        None,
        {
            "schedule.cron": "0 3 * * 1",
            "schedule.timezone": "Europe/Paris",
            "schedule.flows": ["run", "score"],
            "collect.units": 2,
        },
    )
    built = deployments.build_deployments(cfg, str(tmp_path / "w.duckdb"))
    assert [d.name for d in built] == ["neuroscribe-run", "neuroscribe-score"]
    for d, stage in zip(built, ["run", "score"], strict=True):
        assert d.flow_name == "neuroscribe-scheduled"
        assert d.entrypoint == "flows.deployments.scheduled"
        assert d.entrypoint_type == EntrypointType.MODULE_PATH
        (schedule,) = d.schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 3 * * 1", "Europe/Paris")
        params = json.loads(json.dumps(d.parameters))  # JSON, as the server stores it
        assert params["stage"] == stage and params["warehouse"].endswith("w.duckdb")
        assert RunConfig.model_validate(params["config"]) == cfg

    every = load_config(None, {"schedule.interval_seconds": 90})
    (d,) = deployments.build_deployments(every, "w.duckdb")
    assert d.schedules[0].schedule.interval.total_seconds() == 90
    with pytest.raises(ConfigError, match="no schedule"):
        deployments.build_deployments(RunConfig(), "w.duckdb")


def test_retries_skip_bad_input():
    from prefect.states import Failed

    from flows.retry import retry_unless_bad_input
    from neuroscribe.collect import CollectError

    assert not retry_unless_bad_input(None, None, Failed(data=CollectError("no such corpus")))
    assert not retry_unless_bad_input(None, None, Failed(data=ConfigError("bad key")))
    # A ValueError is not bad input by itself: a garbled response's JSONDecodeError is retried.
    garbled = json.JSONDecodeError("Expecting value", "{", 1)
    assert retry_unless_bad_input(None, None, Failed(data=garbled))
    assert retry_unless_bad_input(None, None, Failed(data=RuntimeError("warehouse locked")))
    assert retry_unless_bad_input(None, None, Failed(data=OSError("connection reset")))


def test_summary_markdown_table():
    from flows.pipeline import summary_markdown
    from neuroscribe.warehouse.reads import ControlComparison

    row = ControlComparison(
        explainer="openai/m",
        simulator="baseline/lexical",
        score_kind="corr_top_random",
        n_units=4,
        n_beats_shuffled=3,
        n_beats_baseline=2,
        n_beats_both=1,
        share_beats_both=0.25,
        mean_score=0.4321,
        mean_shuffled=0.1,
        mean_baseline=0.2,
        n_shuffled_constant=0,
        n_baseline_constant=0,
    )
    text = summary_markdown("run-1", "abc123", [row])
    assert "# neuroscribe run `run-1`" in text and "config hash `abc123`" in text
    assert "| openai/m | baseline/lexical | 4 | +0.432 | 1/4 (25%) |" in text
    assert "No annotator compared" in summary_markdown("run-1", "abc123", [])


# --- the command ---------------------------------------------------------------------------


def neuroscribe(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "neuroscribe"
    return subprocess.run(
        [str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_serve_refuses_a_bad_schedule_with_exit_2(tmp_path):
    """Refused before any model is loaded or a Prefect server contacted: in process for speed,
    and once through the installed command."""
    from typer.testing import CliRunner

    from neuroscribe.cli import app

    bad = tmp_path / "bad.toml"
    bad.write_text('[schedule]\ncron = "0 25 * * *"\n')
    plain = tmp_path / "plain.toml"
    plain.write_text("[collect]\nunits = 2\n")
    wh = str(tmp_path / "w.duckdb")
    cases = [
        (["--config", str(bad), "serve"], "malformed cron expression '0 25 * * *'"),
        (["--config", str(plain), "serve", "--cron", "61 * * * *"], "malformed cron"),
        (
            ["--config", str(plain), "serve", "--cron", "* * * * *", "--timezone", "Nowhere/X"],
            "unknown time zone 'Nowhere/X'",
        ),
        (["--config", str(plain), "serve"], "no schedule"),
        (["serve", "--cron", "0 3 * * *", "--interval-seconds", "5"], "not both"),
        (["serve", "--cron", "0 3 * * *", "--flows", "run,report"], "schedule.flows.1"),
    ]
    for args, needle in cases:
        r = CliRunner().invoke(app, ["--warehouse", wh, *args])
        assert r.exit_code == 2, (args, r.output)
        assert needle in " ".join(r.stderr.split()), (args, r.stderr)
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    r = neuroscribe("--warehouse", wh, "--config", str(bad), "serve", cwd=tmp_path, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "error: schedule.cron: Value error, malformed cron expression '0 25 * * *'" in r.stderr
    assert not Path(wh).exists()  # nothing written

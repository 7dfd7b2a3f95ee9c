"""The pipeline commands' options are the run config's fields."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from neuroscribe.cli.options import config_options, options_for, parse_value
from neuroscribe.config import CollectConfig, RunConfig, load_config

ALL = ("subject", "corpus", "collect", "explain", "simulate", "score")


def test_every_field_of_the_run_config_has_help_text():
    for section in (*ALL, "schedule"):
        for option in options_for((section,)):
            assert option.help.split(" (")[0].strip(), option.dotted


def test_options_are_named_after_fields_and_prefixed_only_when_shared():
    flags = {o.dotted: o.flag for o in options_for(ALL)}
    assert flags["subject.model"] == "--model"
    assert flags["collect.units"] == "--units"
    assert flags["collect.max_windows"] == "--max-windows"
    assert flags["corpus.source"] == "--corpus"  # named in the field's metadata
    assert flags["explain.local_dtype"] == "--explain-local-dtype"
    assert flags["simulate.local_dtype"] == "--simulate-local-dtype"
    assert len(set(flags.values())) == len(flags)
    # Every field of every section is an option.
    assert len(flags) == sum(
        len(RunConfig.model_fields[s].annotation.model_fields) for s in ALL  # type: ignore[union-attr]
    )


def test_values_are_parsed_as_the_config_reads_them():
    units = CollectConfig.model_fields["units"].annotation
    assert parse_value(units, "8") == "8"  # pydantic makes it the count 8
    assert parse_value(units, "3, 17,42") == ["3", "17", "42"]
    site = CollectConfig.model_fields["site"].annotation
    assert parse_value(site, "layers.1.mlp,layers.2.mlp") == "layers.1.mlp,layers.2.mlp"
    quantiles = CollectConfig.model_fields["quantiles"].annotation
    assert parse_value(quantiles, "0.5") == ["0.5"]
    cfg = load_config(None, {"collect.units": parse_value(units, "3,17"), "collect.seed": "4"})
    assert cfg.collect.units == [3, 17] and cfg.collect.seed == 4


def _probe() -> tuple[typer.Typer, dict[str, Any]]:
    seen: dict[str, Any] = {}
    app = typer.Typer()

    @app.command()
    @config_options("collect", "score")
    def probe(overrides: dict[str, Any], extra: int = 0) -> None:
        seen.update(overrides, extra=extra)

    @app.command()
    def other() -> None: ...

    return app, seen


def test_a_command_receives_the_options_given_and_only_those():
    app, seen = _probe()
    r = CliRunner().invoke(
        app, ["probe", "--units", "3,4", "--no-fuzz", "--bootstrap", "7", "--extra", "2"]
    )
    assert r.exit_code == 0, r.output
    assert seen == {
        "collect.units": ["3", "4"], "score.fuzz": False, "score.bootstrap": "7", "extra": 2
    }
    help_text = CliRunner().invoke(app, ["probe", "--help"], env={"COLUMNS": "200"}).output
    assert "--n-explain" in help_text and "Top windows shown to the explainer" in help_text


@pytest.mark.parametrize("flag", ["--units", "--window-tokens"])
def test_a_bad_value_fails_as_the_config_does(flag):
    from neuroscribe.config import ConfigError

    with pytest.raises(ConfigError, match="collect"):
        load_config(None, {f"collect.{flag[2:].replace('-', '_')}": "many"})


def test_plugin_options_list_the_registry_names():
    from neuroscribe.registry import SIMULATORS

    SIMULATORS.register("toy/*", "tests:nothing")  # listed, never resolved
    try:
        helps = {o.dotted: o.help for o in options_for(("explain", "simulate"))}
    finally:
        SIMULATORS.unregister("toy/*")
    assert "baseline/ngram" in helps["explain.explainers"]
    for key in ("simulate.simulators", "explain.select_with"):
        assert "baseline/lexical" in helps[key] and "toy/<model>" in helps[key]


def test_a_field_has_one_flag_in_every_command_and_commands_take_what_they_use():
    from neuroscribe.cli.pipeline import STAGE_SECTIONS

    flags: dict[str, set[str]] = {}
    for parts in STAGE_SECTIONS.values():
        for o in options_for(parts):
            flags.setdefault(o.dotted, set()).add(o.flag)
    assert all(len(f) == 1 for f in flags.values()), flags
    assert flags["simulate.local_dtype"] == {"--simulate-local-dtype"}
    assert flags["explain.format"] == {"--explain-format"}  # --format means table|csv|json
    score = {o.dotted for o in options_for(STAGE_SECTIONS["score"])}
    assert "collect.units" in score and "collect.window_tokens" not in score

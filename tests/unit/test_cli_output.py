"""Text from the warehouse is printed as written: never read as rich markup or emoji codes."""

from __future__ import annotations

from typer.testing import CliRunner
from warehouse_fixtures import build_warehouse

from neuroscribe.cli import app

TRICKY = "[/bold] [red]gone?[/red] :x: [link=http://x]y[/link]"


def test_query_prints_markup_and_emoji_codes_literally(tmp_path):
    built = build_warehouse(tmp_path / "w.duckdb")
    runner = CliRunner()
    r = runner.invoke(
        app, ["--warehouse", str(built.path), "query", f"select '{TRICKY}' as \"[b]col\""],
        env={"COLUMNS": "200"},
    )
    assert r.exit_code == 0, r.output
    assert TRICKY in r.stdout and "[b]col" in r.stdout
    csv = runner.invoke(
        app, ["--warehouse", str(built.path), "query", "--format", "csv", "select 1 as a, 2 as b"]
    )
    assert csv.stdout == "a,b\n1,2\n"  # plain newlines, not CRLF


def test_an_error_message_with_markup_is_printed_as_written(tmp_path):
    built = build_warehouse(tmp_path / "w.duckdb")
    r = CliRunner().invoke(
        app, ["--warehouse", str(built.path), "query", f"select * from \"{TRICKY}\""],
        env={"COLUMNS": "300"},
    )
    assert r.exit_code == 2
    assert "[/bold]" in r.stderr and ":x:" in r.stderr

"""The ``neuroscribe`` Typer app, its global options, and how errors reach the user."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    help="Explain the units of a transformer and test each explanation on held-out text.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help text is shown as written (it holds [sections] and ``code``)
)
# Off a terminal (pipes, logs, CI) rich would wrap tables at 80 columns; give them room. Text
# from the warehouse is data: no ``:name:`` emoji codes (markup is escaped where it is printed).
out = Console(width=None if sys.stdout.isatty() else 200, emoji=False)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200, emoji=False)


class State:
    """The global options, for the command that runs after them."""

    warehouse: str | None = None
    config: Path | None = None
    verbose: bool = False


state = State()


@app.callback()
def main(
    warehouse: Annotated[
        str | None,
        typer.Option(
            help="DuckDB warehouse file (else $NEUROSCRIBE_WAREHOUSE, else "
            "warehouse/neuroscribe.duckdb)."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML config file; its tables mirror the run config.")
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's logs and full tracebacks.")] = False,
) -> None:
    state.warehouse, state.config, state.verbose = warehouse, config, verbose


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input (``BadInput``) and a warehouse that cannot be used become one message and exit
    status 2; other errors are failures of the program and exit 1 with their traceback."""
    from neuroscribe.errors import BadInput
    from neuroscribe.warehouse import WarehouseError

    try:
        yield
    except (BadInput, WarehouseError) as e:
        if state.verbose:
            err.print_exception()
        raise fail(str(e)) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None


def quiet_libraries() -> None:
    """transformers draws its own bars and warnings while loading weights, and libraries warn
    about their own deprecations; ours say what is going on (``--verbose`` keeps theirs)."""
    if state.verbose:
        return
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Dask's scheduler and workers log every start and stop (read when dask is imported, here
    # and in the worker processes of ``[engine] kind = "dask"``, which inherit the variable).
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def where(warehouse: str) -> None:
    out.print(f"warehouse: {escape(str(Path(warehouse).resolve()))}", highlight=False)
    hint = f'try: neuroscribe --warehouse {warehouse} query "select * from scored_explanations"'
    out.print(escape(hint), highlight=False)

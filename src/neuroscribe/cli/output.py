"""One way to print rows: a rich table, CSV or JSON.

Cell text is data, never markup: a ``[/bold]`` in an explanation is printed as written.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from rich.markup import escape
from rich.table import Table

from neuroscribe.cli.app import fail, out

Format = Literal["table", "csv", "json"]
FORMATS: tuple[Format, ...] = ("table", "csv", "json")


def check_format(fmt: str) -> Format:
    if fmt not in FORMATS:
        raise fail(f"unknown format '{fmt}'; use {', '.join(FORMATS[:-1])} or {FORMATS[-1]}")
    return fmt  # type: ignore[return-value]


def cell(value: Any, null: str = "NULL") -> str:
    """A value as a table shows it."""
    if value is None:
        return null
    return str(value)


def emit(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: Format = "table",
    *,
    title: str | None = None,
    footer: str | None = None,
    right: Sequence[str] = (),
    no_wrap: Sequence[str] = (),
    max_width: Mapping[str, int] | None = None,
    sections: Sequence[bool] | None = None,
    null: str = "NULL",
) -> None:
    """Print ``rows`` (one value per column) as a table (``title``, then ``footer`` below;
    ``right``: right-aligned columns; ``no_wrap`` and ``max_width`` by column; ``sections[i]``:
    a rule after row i), CSV or JSON."""
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return
    if fmt == "json":
        records = [dict(zip(columns, r, strict=True)) for r in rows]
        sys.stdout.write(json.dumps(records, default=str, indent=1) + "\n")
        return
    table = Table(title=escape(title) if title else None)
    for c in columns:
        table.add_column(
            escape(c),
            justify="right" if c in right else "left",
            no_wrap=c in no_wrap,
            max_width=(max_width or {}).get(c),
        )
    for i, r in enumerate(rows):
        table.add_row(
            *(escape(cell(v, null)) for v in r),
            end_section=bool(sections and sections[i]),
        )
    out.print(table)
    if footer:
        out.print(escape(footer), highlight=False)

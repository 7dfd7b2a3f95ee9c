"""``python -m neuroscribe``: the command line."""

from neuroscribe.cli import app

app(prog_name="neuroscribe")

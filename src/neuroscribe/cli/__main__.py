"""``python -m neuroscribe.cli``."""

from neuroscribe.cli import app

app(prog_name="neuroscribe")

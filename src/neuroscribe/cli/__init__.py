"""The ``neuroscribe`` command line: a face on the library, with no SQL and no stage logic.

Options of the pipeline commands come from the run config (``options``); everything printed
goes through one routine (``output.emit``); rows come from the warehouse's read functions.
"""

from neuroscribe.cli import audit, compare, pipeline, reading  # noqa: F401  (their commands join the app)
from neuroscribe.cli.app import app

__all__ = ["app"]

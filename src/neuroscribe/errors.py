"""The one type of bad input.

``BadInput`` is what the user can fix: a config, a corpus, a model, a site, an annotator name, an
endpoint that fails its check, a warehouse file. The CLI prints it as one line and exits with
status 2; the flows never retry it. Every other exception is a failure of the run (retried where
retrying can help: a ``ValueError`` from a garbled response is not bad input).
"""

from __future__ import annotations


class BadInput(ValueError):
    """Input that cannot be used; the message names the problem."""

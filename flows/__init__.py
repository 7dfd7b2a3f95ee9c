"""Prefect flows: the only place neuroscribe imports Prefect.

Prefect must work offline: analytics off before Prefect is imported.
"""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

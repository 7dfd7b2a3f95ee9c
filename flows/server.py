"""A temporary Prefect API server that cannot outlive the command that started it.

Without a configured server (``PREFECT_API_URL``) Prefect starts one of its own in a child
process and stops it at exit; a command stopped by SIGTERM (``timeout``, a scheduler, a container
stop) or SIGKILL never reaches that point, and the server (about 200 MB) runs on forever. So
the CLI starts the server itself, the way Prefect does (uvicorn on its app factory, on
127.0.0.1), as a child that the kernel stops when its parent dies (Linux ``PR_SET_PDEATHSIG``),
and points Prefect at it. This must happen before Prefect is imported: its settings are read
once, at import.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

STARTUP_TIMEOUT_S = 60.0


def _die_with_parent() -> None:  # runs in the child, between fork and exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def temporary_server() -> Iterator[str | None]:
    """Yield the URL of a Prefect API server for this process: none started (None) when one is
    configured or Prefect is already imported (tests' harness), else one of our own that is
    stopped on the way out, and by the kernel if this process is killed."""
    spec = importlib.util.find_spec("prefect")
    if os.environ.get("PREFECT_API_URL") or "prefect" in sys.modules or spec is None:
        yield None
        return
    assert spec.origin is not None
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    server = subprocess.Popen(  # noqa: S603
        [
            sys.executable, "-m", "uvicorn",
            "--app-dir", str(Path(spec.origin).parent.parent),
            "--factory", "prefect.server.api.server:create_app",
            "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "error", "--lifespan", "on",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 (no threads run yet at this point)
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the temporary Prefect server on port {port} did not start "
                    f"(exit code {server.poll()}); set PREFECT_API_URL to use a running one"
                )
            time.sleep(0.1)
        os.environ["PREFECT_API_URL"] = url
        yield url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

"""One asyncio event loop per process for the HTTP annotators, on a daemon thread.

Callers stay synchronous (``llm.fanout.fan_out`` hands their work to this loop and waits), and
the network work of every request in flight runs as coroutines of the ``AsyncOpenAI`` client on
this one loop. Measured by ``benchmarks/llm_throughput.py``: with the synchronous client every
pool thread ran its own HTTP stack, and 32 threads contending for the interpreter lock sustained
fewer calls per second than one; on one loop, concurrency raises throughput.

Clients are shared by every backend of the process that talks to the same endpoint with the
same key (connections are reused across explain, select and simulate). The key is used only to
tell clients apart in memory, through its hash. Where the transport is aiohttp, requests are
posted by a ``llm.poster.JsonPoster`` made from the client (``poster``), one per client.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """A lazily started event loop on a daemon thread (restarted in a forked child)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._clients: dict[tuple[str | None, str], Any] = {}
        self._posters: dict[tuple[str | None, str], Any] = {}
        self._limits: dict[str, tuple[int, asyncio.Semaphore]] = {}

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
            if self._loop is None or self._pid != os.getpid() or not alive:
                self._loop = asyncio.new_event_loop()
                # bound to the loop that ran them
                self._clients, self._posters, self._limits = {}, {}, {}
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="neuroscribe-llm-loop", daemon=True
                )
                self._thread.start()
                self._pid = os.getpid()
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result in the calling thread."""
        loop = self.loop()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("LoopThread.run called from the loop's own thread")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def client(self, base_url: str | None) -> Any:
        """The process's ``AsyncOpenAI`` client for ``base_url`` and ``OPENAI_API_KEY``. Our
        retry policy is the only one (``max_retries=0``); timeouts are set per request. Call it
        on the loop (the aiohttp transport binds to the running loop)."""
        import openai

        key = os.environ.get("OPENAI_API_KEY") or "not-set"  # local servers ignore it
        ident = (base_url, hashlib.sha256(key.encode()).hexdigest())
        self.loop()
        with self._lock:
            client = self._clients.get(ident)
            if client is None:
                client = openai.AsyncOpenAI(
                    base_url=base_url, api_key=key, max_retries=0, http_client=_http_client()
                )
                self._clients[ident] = client
            return client

    def poster(self, base_url: str | None) -> Any:
        """The process's ``llm.poster.JsonPoster`` for ``base_url`` and ``OPENAI_API_KEY`` (made
        from ``client``, whose headers it sends). Call it on the loop."""
        from neuroscribe.llm.poster import JsonPoster

        client = self.client(base_url)
        ident = (base_url, hashlib.sha256(client.api_key.encode()).hexdigest())
        with self._lock:
            poster = self._posters.get(ident)
            if poster is None:
                poster = JsonPoster(client)
                self._posters[ident] = poster
            return poster

    def semaphore(self, annotator: str, concurrency: int) -> asyncio.Semaphore:
        """The semaphore that caps requests in flight for one annotator, shared by all its
        bound backends (explain, select, simulate). Used on the loop only."""
        with self._lock:
            held = self._limits.get(annotator)
            if held is None or held[0] != concurrency:
                held = (concurrency, asyncio.Semaphore(concurrency))
                self._limits[annotator] = held
            return held[1]

    def close(self) -> None:
        """Close every client and stop the loop (at exit; a later call starts a new one)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            clients = [*self._posters.values(), *self._clients.values()]
            self._loop, self._thread, self._clients, self._posters = None, None, {}, {}
        if loop is None or thread is None or not thread.is_alive() or self._pid != os.getpid():
            return

        async def close_all() -> None:
            for c in clients:
                await c.close()

        try:
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout=5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            if not thread.is_alive():
                loop.close()


def transport() -> str:
    """The HTTP transport of new clients: ``aiohttp`` where it is installed (``openai[aiohttp]``)
    and not switched off with ``NEUROSCRIBE_OPENAI_AIOHTTP=0``, else ``httpx`` (the client's
    default). Measured by ``benchmarks/llm_throughput.py`` on these machines: aiohttp takes about
    half the CPU per request, and sends no request with an idle wait between its headers and
    its body."""
    import importlib.util

    import openai

    off = os.environ.get("NEUROSCRIBE_OPENAI_AIOHTTP", "").strip() == "0"
    if off or not hasattr(openai, "DefaultAioHttpClient"):
        return "httpx"
    return "aiohttp" if importlib.util.find_spec("aiohttp") is not None else "httpx"


def _http_client() -> Any:
    import openai

    if transport() != "aiohttp":
        return None
    try:
        return openai.DefaultAioHttpClient()
    except RuntimeError:  # the client was installed without its aiohttp extra
        return None


LOOP = LoopThread()
"""The process-wide loop of the ``openai`` backend."""

atexit.register(LOOP.close)

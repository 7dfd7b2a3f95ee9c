"""The ``openai`` backend's request path: one JSON POST on a shared aiohttp session.

The ``AsyncOpenAI`` client builds every request through its options, header merging, URL
parsing and an httpx-on-aiohttp adapter: measured by ``benchmarks/llm_throughput.py`` that was
about 60% of the client CPU of a call, and at a 200 ms endpoint with 64 requests in flight the
client's CPU, not the endpoint, bounded calls per second. So a call is posted here directly
with aiohttp: the URL and the headers (the client's own: authorisation, organisation and
project, user agent) are taken from the ``AsyncOpenAI`` client once, when the poster is made,
and a failure is raised as the exception the client itself would raise (``APIStatusError`` and
its subclasses built by the client from the status and body, ``APITimeoutError``,
``APIConnectionError``), so retries, preflight messages and the ledger read them as before.

Used when aiohttp is installed and not switched off (``llm.aio.transport``); otherwise the
backend posts through the ``AsyncOpenAI`` client.
"""

from __future__ import annotations

import importlib
import json
from typing import Any
from urllib.request import getproxies


def _httpx() -> Any:
    """The HTTP library of the installed openai package (its exceptions carry its requests
    and responses): ``httpx2`` in recent releases, ``httpx`` before."""
    for name in ("httpx2", "httpx"):
        try:
            return importlib.import_module(name)
        except ImportError:  # pragma: no cover - whichever the openai release uses is there
            continue
    raise ImportError("the openai package's HTTP library (httpx2 or httpx) is not installed")


class JsonPoster:
    """POSTs JSON bodies to one endpoint with one client's headers; made on the event loop."""

    def __init__(self, client: Any) -> None:
        import aiohttp

        self.client = client
        self.base = str(client.base_url).rstrip("/")
        headers = {**client.default_headers, **client.auth_headers}
        self.headers = {
            str(k): v for k, v in headers.items() if isinstance(v, str)  # Omit() means unset
        }
        self.headers["Content-Type"] = "application/json"
        self.headers.setdefault("Accept", "application/json")
        # Proxies from the environment, as the client honours them; looked up once here, since
        # aiohttp's trust_env looks them up in a worker thread on every request.
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), trust_env=bool(getproxies())
        )

    async def post(self, path: str, body: dict[str, Any], timeout_s: float) -> str:
        """The body of a 2xx answer as text; other statuses, timeouts and connection failures
        raise the openai client's exceptions."""
        import aiohttp
        import openai

        url = f"{self.base}/{path.lstrip('/')}"
        data = json.dumps(body, ensure_ascii=False).encode()
        try:
            async with self.session.post(
                url, data=data, headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                raw = await response.read()
                if response.status < 300:
                    return raw.decode(response.charset or "utf-8", errors="replace")
                status, headers = response.status, list(response.headers.items())
        except TimeoutError as e:
            raise openai.APITimeoutError(request=self._request(url)) from e
        except (aiohttp.ClientError, OSError) as e:
            raise openai.APIConnectionError(
                message=f"Connection error: {type(e).__name__}: {e}", request=self._request(url)
            ) from e
        httpx = _httpx()
        failed = httpx.Response(status, headers=headers, content=raw, request=self._request(url))
        raise self.client._make_status_error_from_response(failed)

    def _request(self, url: str) -> Any:
        return _httpx().Request("POST", url)

    async def close(self) -> None:
        await self.session.close()

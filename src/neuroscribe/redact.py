"""Credentials out of every string that is stored or logged.

An endpoint (or a proxy in front of it) may echo the request back in an error body: its
``Authorization`` header, the key in a query string, a URL with a password. Whatever such a body
holds must not reach the warehouse (``llm_calls.error``, ``llm_calls.response``), a log line or
Prefect's database. ``redact`` replaces the secret part of each pattern below with ``REDACTED``
and keeps the rest, so an error stays readable ("Bearer [REDACTED]" still says a key was sent);
``public_url`` is the form of an endpoint URL that may be stored (no userinfo, no query string,
no fragment).

Pure functions, no state. The patterns err on the side of removing too much: a stored error is
for a reader, never parsed back. Replacements contain no quote or backslash, so a JSON document
stays valid JSON after ``redact``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[REDACTED]"

# The value characters of a token: never a quote, backslash, comma, brace or whitespace, so a
# match stops at the end of a JSON string or a header value.
_VALUE = r"[^\s\"'\\,;&<>{}\[\]]+"

_Replacement = str | Callable[[re.Match[str]], str]

_PATTERNS: tuple[tuple[re.Pattern[str], _Replacement], ...] = (
    # Authorization / Proxy-Authorization headers, in header form or as JSON keys:
    # "Authorization: Bearer abc", '"authorization": "Basic abc"', "authorization=abc".
    (
        re.compile(
            r"((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
            r"(?:(bearer|basic|token|digest|apikey)\s+)?" + _VALUE,
            re.IGNORECASE,
        ),
        lambda m: m[1] + (m[2] + " " if m[2] else "") + REDACTED,
    ),
    # A bare "Bearer abc" anywhere else (a message quoting the header's value).
    (re.compile(r"\b(bearer)\s+(?!\[REDACTED\])" + _VALUE, re.IGNORECASE), r"\1 " + REDACTED),
    # Keys shaped like OpenAI's and their imitators': sk-..., sk-proj-..., rk-..., pk-...
    (re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{8,}"), REDACTED),
    # Named credentials in headers, forms and JSON bodies: "x-api-key: abc", "api_key=abc",
    # '"password": "abc"'. Only compound names: a bare "key:" is common in ordinary text (and in
    # explanations, whose raw responses pass here too).
    (
        re.compile(
            r"(\b(?:x-)?(?:api[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token"
            r"|client[_-]?secret|secret[_-]?key|password|passwd)[\"']?\s*[:=]\s*[\"']?)" + _VALUE,
            re.IGNORECASE,
        ),
        r"\1" + REDACTED,
    ),
    # Short parameter names, only inside a query string: "?key=abc", "&token=abc", "&sig=abc".
    (
        re.compile(r"([?&](?:key|token|sig|signature|secret|code)=)" + _VALUE, re.IGNORECASE),
        r"\1" + REDACTED,
    ),
    # Passwords in URLs: scheme://user:password@host.
    (re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^\s/@:\"'\\]+:)[^\s/@\"'\\]+@", re.IGNORECASE),
     r"\1" + REDACTED + "@"),
)


_NEEDS: tuple[Callable[[str], bool], ...] = (
    lambda low: "authorization" in low,
    lambda low: "bearer" in low,
    lambda low: "k-" in low,
    lambda low: any(w in low for w in ("api", "access", "auth", "refresh", "client", "secret",
                                       "passw")),
    lambda low: "=" in low and ("?" in low or "&" in low),
    lambda low: "://" in low and "@" in low,
)
"""For each pattern, a test on the lowercased text that every match passes (a word the pattern
cannot match without): a pattern whose test fails is not run. Running all six patterns over every
stored response took about 1.8 ms per LLM call (``benchmarks/llm_throughput.py``); most texts
pass none of the tests."""


def redact(text: str) -> str:
    """``text`` with every credential-looking value replaced by ``[REDACTED]``."""
    low = text.lower()
    if not low.isascii():  # the letters that match an ASCII one under re.IGNORECASE
        low = low.replace("\u017f", "s").replace("\u0131", "i").replace("i\u0307", "i")
    for (pattern, replacement), needed in zip(_PATTERNS, _NEEDS, strict=True):
        if needed(low):
            text = pattern.sub(replacement, text)
    return text


def redact_optional(text: str | None) -> str | None:
    """``redact`` that passes None through (nullable columns)."""
    return None if text is None else redact(text)


def public_url(url: str | None) -> str | None:
    """``url`` without userinfo (``user:password@``), query string and fragment: the form that
    may be stored in a run's config or shown in a message. None stays None; a string that does
    not parse as a URL is redacted instead."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # a malformed port or bracket: keep what can be kept, safely
        return redact(url.split("?", 1)[0].split("#", 1)[0])
    if not parts.scheme or not host:
        return redact(url.split("?", 1)[0].split("#", 1)[0])
    if ":" in host:  # IPv6 literals keep their brackets
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

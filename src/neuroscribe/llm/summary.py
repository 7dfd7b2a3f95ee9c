"""The run summary: per annotator, what was called, what came from the cache, what failed and
why, how often calls were retried, tokens and cost. Built from ledger rows (and optionally the
explanations and simulations, whose typed failures it counts too)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from neuroscribe.llm.base import LLMCall
from neuroscribe.records import Explanation, Record, Simulation


class AnnotatorSummary(Record):
    annotator: str
    calls: int = 0
    """Ledger rows: calls made plus cache hits."""
    cache_hits: int = 0
    ok: int = 0
    """Calls that returned a response (cache hits included)."""
    failed: int = 0
    call_failures: dict[str, int] = {}
    """Failed calls by kind (``timeout``, ``rate_limited``, ``server_error``, ...)."""
    retries: int = 0
    prompt_tokens: int = 0
    """Tokens of calls actually made (cache hits cost nothing)."""
    completion_tokens: int = 0
    cost_usd: float | None = None
    """None when no price is configured for this annotator."""
    outputs_ok: int = 0
    """Explanations or simulations that came out ok."""
    output_failures: dict[str, int] = {}
    """Failed explanations or simulations by kind (``backend_error``, ``unparseable``...)."""


def run_summary(
    calls: Iterable[LLMCall],
    explanations: Iterable[Explanation] = (),
    simulations: Iterable[Simulation] = (),
) -> list[AnnotatorSummary]:
    """One row per annotator, sorted by name."""
    rows: dict[str, dict] = {}

    def row(name: str) -> dict:
        return rows.setdefault(name, {"annotator": name, "call_failures": Counter(),
                                      "output_failures": Counter()})

    for c in calls:
        r = row(c.annotator)
        r["calls"] = r.get("calls", 0) + 1
        r["cache_hits"] = r.get("cache_hits", 0) + c.cache_hit
        r["retries"] = r.get("retries", 0) + c.retries
        if c.status == "ok":
            r["ok"] = r.get("ok", 0) + 1
        else:
            r["failed"] = r.get("failed", 0) + 1
            r["call_failures"][failure_kind(c.error)] += 1
        if not c.cache_hit:
            r["prompt_tokens"] = r.get("prompt_tokens", 0) + c.prompt_tokens
            r["completion_tokens"] = r.get("completion_tokens", 0) + c.completion_tokens
        if c.cost_usd is not None:
            r["cost_usd"] = (r.get("cost_usd") or 0.0) + c.cost_usd
    outputs: list[tuple[str, str, str | None]] = [
        *((e.explainer, e.status, e.failure) for e in explanations),
        *((s.simulator, s.status, s.failure) for s in simulations),
    ]
    for name, status, failure in outputs:
        r = row(name)
        if status == "ok":
            r["outputs_ok"] = r.get("outputs_ok", 0) + 1
        else:
            r["output_failures"][failure or "unknown"] += 1
    return [
        AnnotatorSummary(**{**r, "call_failures": dict(r["call_failures"]),
                            "output_failures": dict(r["output_failures"])})
        for _, r in sorted(rows.items())
    ]


def failure_kind(error: str | None) -> str:
    """The kind a ledger ``error`` starts with (``"timeout: ..."`` -> ``timeout``)."""
    if not error:
        return "unknown"
    head, sep, _ = error.partition(":")
    return head.strip() if sep and head.strip() and " " not in head.strip() else "unknown"


def format_summary(rows: Iterable[AnnotatorSummary]) -> str:
    """A plain-text table for the CLI, one line per annotator."""
    lines = [f"{'annotator':<36} {'calls':>6} {'cached':>6} {'ok':>6} {'failed':>6} "
             f"{'retries':>7} {'tok in':>9} {'tok out':>8} {'cost $':>9}  failures"]
    for r in rows:
        cost = "-" if r.cost_usd is None else f"{r.cost_usd:.4f}"
        kinds = {**{f"call:{k}": v for k, v in r.call_failures.items()},
                 **{f"out:{k}": v for k, v in r.output_failures.items()}}
        failures = ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())) or "-"
        lines.append(
            f"{r.annotator:<36} {r.calls:>6} {r.cache_hits:>6} {r.ok:>6} {r.failed:>6} "
            f"{r.retries:>7} {r.prompt_tokens:>9} {r.completion_tokens:>8} {cost:>9}  {failures}"
        )
    return "\n".join(lines)

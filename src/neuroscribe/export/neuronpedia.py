"""Neuronpedia's explanation format: one JSON object per explanation.

Neuronpedia's data exports (``explanations/batch-N.jsonl.gz``) hold one explanation per line with
``modelId``, ``layer`` (its *source* id, ``<layer number>-<source set>``, for example
``6-res-jb``), ``index`` (a string), ``description``, ``typeName`` and ``explanationModelName``;
its importer bulk-inserts such lines. Neuronpedia's exports carry no scores, so ours add them in
``scores``, one entry per (simulator, score kind), named like Neuronpedia's ``ExplanationScore``
rows, plus a ``neuroscribe`` object with our ids and provenance. The mapping:

=========================  ===================================================================
Neuronpedia field           neuroscribe
=========================  ===================================================================
``modelId``                 ``model_id`` argument, else the subject name's last path component,
                            lower-cased (``HuggingFaceTB/SmolLM2-135M`` -> ``smollm2-135m``)
``layer``                   ``N-<set>`` from site ``layers.N.<kind>``: set = ``source_set``
                            argument, else ``mlp`` for ``mlp`` and ``res`` for ``resid``, with
                            ``-sae`` appended for SAE features (pass ``source_set`` to match a
                            Neuronpedia release name such as ``res-jb``)
``index``                   ``unit_index`` as a string
``description``             the explanation text
``typeName``                ``neuroscribe``
``explanationModelName``    the explainer (``backend/model``)
``scores[]``                ``explanationScoreTypeName`` = score kind, ``explanationScoreModelName``
                            = simulator, ``value`` (null when undefined, with ``reason``),
                            ``ciLow``, ``ciHigh``
``neuroscribe``             ``unit_key``, ``explanation_id``, ``prompt_sha``,
                            ``explanation_run_id``, ``run_ids``, ``config_hashes``
=========================  ===================================================================

Only selected explanations (best-of-n winners) are written, never the shuffled control.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import duckdb

from neuroscribe.export.manifest import ExportError
from neuroscribe.warehouse import exports

SITE_RE = re.compile(r"^layers\.(\d+)\.([a-z_]+)$")
SET_BY_KIND = {"mlp": "mlp", "resid": "res", "attn": "att"}
TYPE_NAME = "neuroscribe"
COLUMNS = ("modelId", "layer", "index", "description", "typeName", "explanationModelName",
           "scores", "neuroscribe")


def model_id(subject: str) -> str:
    """Neuronpedia-style model id from a subject name: last path component, lower-cased."""
    return subject.rstrip("/").rsplit("/", 1)[-1].lower()


def layer_id(site: str, sae_id: str | None = None, source_set: str | None = None) -> str:
    """Neuronpedia source id for a canonical site: ``layers.6.mlp`` -> ``6-mlp``."""
    m = SITE_RE.match(site)
    if not m:
        raise ExportError(f"site '{site}' has no Neuronpedia layer; expected 'layers.N.<kind>'")
    layer, kind = m.groups()
    if source_set is None:
        source_set = SET_BY_KIND.get(kind, kind) + ("-sae" if sae_id else "")
    return f"{layer}-{source_set}"


def restrict(filtered_sql: str) -> str:
    """Keep the rows Neuronpedia gets: selected explanations, not the shuffled control."""
    return exports.neuronpedia_rows(filtered_sql)


def grouped_query(filtered_sql: str) -> str:
    """One row per explanation of ``filtered_sql`` (rows of scored_explanations), scores listed.

    Only constant SQL is added around ``filtered_sql``; user values stay in its parameters.
    """
    return exports.neuronpedia_grouped(filtered_sql)


def to_record(
    row: dict[str, Any], model: str | None = None, source_set: str | None = None
) -> dict[str, Any]:
    """One grouped row as a Neuronpedia explanation object."""
    return {
        "modelId": model or model_id(row["subject"]),
        "layer": layer_id(row["site"], row["sae_id"], source_set),
        "index": str(row["unit_index"]),
        "description": row["explanation"],
        "typeName": TYPE_NAME,
        "explanationModelName": row["explainer"],
        "scores": [
            {
                "explanationScoreTypeName": s["kind"],
                "explanationScoreModelName": s["simulator"],
                "value": s["value"],
                "reason": s["reason"],
                "ciLow": s["ci_low"],
                "ciHigh": s["ci_high"],
            }
            for s in row["scores"]
        ],
        "neuroscribe": {
            "unit_key": row["unit_key"],
            "explanation_id": row["explanation_id"],
            "prompt_sha": row["prompt_sha"],
            "explanation_run_id": row["explanation_run_id"],
            "run_ids": row["run_ids"],
            "config_hashes": row["config_hashes"],
        },
    }


def iter_lines(
    con: duckdb.DuckDBPyConnection,
    filtered_sql: str,
    params: dict[str, Any],
    model: str | None = None,
    source_set: str | None = None,
    batch_rows: int = 10_000,
) -> Iterator[str]:
    """JSON lines (without newline) of the Neuronpedia records, streamed in batches."""
    reader = exports.stream(con, grouped_query(filtered_sql), params, batch_rows)
    for batch in reader:
        for row in batch.to_pylist():
            rec = to_record(row, model, source_set)
            yield json.dumps(rec, ensure_ascii=False, allow_nan=False)

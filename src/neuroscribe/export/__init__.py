"""Exports of scored explanations (Parquet, JSON Lines, CSV, Neuronpedia) with a manifest."""

from neuroscribe.export.manifest import ExportError, ExportManifest, OutputExistsError
from neuroscribe.export.neuronpedia import layer_id, model_id
from neuroscribe.export.scored import FORMATS, Format, export_scored, scored_query

__all__ = [
    "FORMATS",
    "ExportError",
    "ExportManifest",
    "Format",
    "OutputExistsError",
    "export_scored",
    "layer_id",
    "model_id",
    "scored_query",
]

"""Exports of warehouse views (Parquet, JSON Lines, CSV, Neuronpedia) with a manifest."""

from neuroscribe.export.diff import DIFF_FORMATS, export_model_diff
from neuroscribe.export.manifest import ExportError, ExportManifest, OutputExistsError
from neuroscribe.export.neuronpedia import layer_id, model_id
from neuroscribe.export.scored import FORMATS, Format, export_scored, scored_query
from neuroscribe.export.views import VIEWS, ExportedView, check_view, export_view

__all__ = [
    "DIFF_FORMATS",
    "FORMATS",
    "VIEWS",
    "ExportError",
    "ExportManifest",
    "ExportedView",
    "Format",
    "OutputExistsError",
    "check_view",
    "export_model_diff",
    "export_scored",
    "export_view",
    "layer_id",
    "model_id",
    "scored_query",
]

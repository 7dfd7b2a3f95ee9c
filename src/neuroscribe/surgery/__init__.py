"""Same-function model surgery for known-answer tests: permuted MLP neurons, planted units that
fire on chosen tokens, re-initialised copies, and the function-change check."""

from neuroscribe.surgery.edit import function_change, permute_mlp, reinitialised_copy
from neuroscribe.surgery.mlp import MlpParts, mlp_parts, neuron_rows
from neuroscribe.surgery.plant import (
    MlpInputSample,
    PlantRecord,
    PlantResult,
    mlp_input_sample,
    plant_units,
    unit_activation,
)

__all__ = [
    "MlpInputSample",
    "MlpParts",
    "PlantRecord",
    "PlantResult",
    "function_change",
    "mlp_input_sample",
    "mlp_parts",
    "neuron_rows",
    "permute_mlp",
    "plant_units",
    "reinitialised_copy",
    "unit_activation",
]

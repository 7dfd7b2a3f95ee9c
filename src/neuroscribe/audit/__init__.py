"""The auditing game: plant known features in a copy of the subject, run the pipeline on the
copy, and measure how many its explanations recover.

- ``plan``: checks (an MLP site, plants that fit, a trigger list) and triggers drawn from the
  corpus (``triggers``: words and concepts);
- ``planted``: the planted copy, saved as a local model folder, and its function-change figure;
- ``recover``: whether an explanation names a plant; ``rows``: the warehouse rows.

The flow that runs them around the pipeline is ``flows.audit``. The copy is saved and reused as
``neuroscribe.copies`` says, as the random-model null's is (``neuroscribe.null_model``).
"""

from neuroscribe.audit.plan import plan_audit
from neuroscribe.audit.planted import copy_config, planted_copy
from neuroscribe.audit.recover import Recovery, names_word, recover, recover_all
from neuroscribe.audit.rows import audit_rows
from neuroscribe.audit.spec import AuditPlan, AuditSpec, Plant, PlantedCopy, PlantedUnit

__all__ = [
    "AuditPlan", "AuditSpec", "Plant", "PlantedCopy", "PlantedUnit", "Recovery", "audit_rows",
    "copy_config", "names_word", "plan_audit", "planted_copy", "recover", "recover_all",
]

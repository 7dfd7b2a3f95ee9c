"""Modified copies of the subject (a planted copy for an audit, a re-initialised copy for the
random-model null), saved as ordinary local model folders under the cache and run through the
whole pipeline like any subject.

A copy is made from the subject in float32 (``editable_subject``), written with its tokenizer to
a temporary folder, described by a small JSON record written into that folder, then renamed into
place (``save_copy``): a killed command leaves no half-saved model, and a folder with its record
is complete, so the next command reuses it (``saved_record``) instead of making it again.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from neuroscribe.config import RunConfig
from neuroscribe.models import LoadedModel, load_model

R = TypeVar("R", bound=BaseModel)


def editable_subject(cfg: RunConfig) -> LoadedModel:
    """The subject as copies are made from it: float32, whatever dtype collection runs in."""
    return load_model(cfg.subject.model, cfg.subject.gguf_file, "float32")


def saved_record(folder: Path, record_file: str, record_type: type[R]) -> R | None:
    """The record of a complete saved copy in ``folder``, or None when there is none yet."""
    record = folder / record_file
    if not record.is_file():
        return None
    return record_type.model_validate_json(record.read_text(encoding="utf-8"))


def save_copy(
    folder: Path,
    model: Any,
    tokenizer: Any,
    record_file: str,
    describe: Callable[[Path], R],
) -> R:
    """Save ``model`` and ``tokenizer`` as a model folder at ``folder``, with the record that
    ``describe`` makes from the saved (not yet renamed) folder, e.g. after reloading it."""
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    record = describe(tmp)
    (tmp / record_file).write_text(record.model_dump_json(indent=1), encoding="utf-8")
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder, ignore_errors=True)  # a folder without its record is half made
    os.replace(tmp, folder)
    return record


def load_saved(folder: Path) -> Any:
    """A saved copy as the pipeline will load it (float32, eval mode), but not through the
    process cache: a temporary folder is renamed after this."""
    import torch
    import transformers

    config = transformers.AutoConfig.from_pretrained(folder)
    archs = getattr(config, "architectures", None) or []
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
    auto = transformers.AutoModelForCausalLM if causal else transformers.AutoModel
    return auto.from_pretrained(folder, dtype=torch.float32).eval()


def copy_subject_config(
    cfg: RunConfig, folder: str, units: Sequence[int] | None = None
) -> RunConfig:
    """``cfg`` with the saved copy at ``folder`` as its subject (and ``units`` when given);
    every other setting, the controls included, as in ``cfg``."""
    subject = cfg.subject.model_copy(update={"model": folder, "gguf_file": None})
    update: dict[str, Any] = {"subject": subject}
    if units is not None:
        update["collect"] = cfg.collect.model_copy(update={"units": list(units)})
    return cfg.model_copy(update=update)

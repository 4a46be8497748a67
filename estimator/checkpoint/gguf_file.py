"""A GGUF file (llama.cpp): its metadata mapped to config.json's fields, and its tensor table, read by the
bounded reader :mod:`estimator.checkpoint.gguf_reader` without reading tensor data.

llama.cpp names (``{arch}.block_count``, ``{arch}.attention.head_count_kv``, ...) map to config.json's
(``num_hidden_layers``, ``num_key_value_heads``, ...); the vocabulary is the token embedding's rows, and
the output head is tied when the file stores no ``output.weight``. Architectures without a mapping here
are refused in one line: pass their config.json instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from estimator.checkpoint.files import printable
from estimator.checkpoint.safetensors_files import TensorInfo
from estimator.errors import EstimatorError
from estimator.families import conventions_of

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

# general.architecture -> model_type, and the model_type of one with experts: read before a family is known, so
# kept here as an index of the families' ``GgufConventions`` (tests/test_family_conventions.py ties them).
MODEL_TYPES = {
    "llama": "llama",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "qwen2moe": "qwen2_moe",
    "qwen3moe": "qwen3_moe",
    "phi3": "phi3",
    "gemma2": "gemma2",
    "gemma3": "gemma3_text",
    "olmo2": "olmo2",
    "starcoder2": "starcoder2",
}
WITH_EXPERTS = {"llama": "mixtral"}  # a llama with experts is Mixtral
FIELDS = {  # llama.cpp key (after "{arch}.") -> config.json field
    "block_count": "num_hidden_layers",
    "embedding_length": "hidden_size",
    "feed_forward_length": "intermediate_size",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "attention.key_length": "head_dim",
    "context_length": "max_position_embeddings",
    "attention.sliding_window": "sliding_window",
    "expert_used_count": "num_experts_per_tok",
    "expert_feed_forward_length": "moe_intermediate_size",
    "expert_shared_feed_forward_length": "shared_expert_intermediate_size",
}


def read_gguf(path: Path) -> tuple[dict[str, Any], list[TensorInfo]]:
    """The metadata (key -> value) and the tensors of a GGUF file; one line if it is not a readable one.

    Read by :mod:`estimator.checkpoint.gguf_reader` (bounded, parsed once per file): values as the ``gguf``
    package's ``contents()`` gives them, but an array longer than 4,096 items (a vocabulary) is a
    :class:`~estimator.checkpoint.gguf_reader.LongArray` (its item type and length)."""
    from estimator.checkpoint.gguf_reader import read

    return read(path)


def _one(value: Any, key: str, path: Path) -> Any:
    """A per-layer array whose values agree is that value; one that varies is refused."""
    if isinstance(value, list):
        if not value or any(v != value[0] for v in value):
            raise EstimatorError(f"{path}: {key} varies per layer ({value[:4]}...); pass the model's config.json")
        value = value[0]
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise EstimatorError(f"{path}: {key} is {type(value).__name__}, not a number; re-convert the GGUF file")
    return value


def expert_count(model_type: str) -> str:
    """The config.json field a GGUF file's ``{arch}.expert_count`` is read into, as ``model_type``'s family names it
    (Mixtral: num_local_experts); num_experts where it names none."""
    gguf = conventions_of(model_type).gguf
    return gguf.expert_count if gguf is not None else "num_experts"


def gguf_config(metadata: dict[str, Any], tensors: list[TensorInfo], path: Path) -> dict[str, Any]:
    """config.json's fields from a GGUF file's metadata and tensor table."""
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str) or arch not in MODEL_TYPES:
        raise EstimatorError(
            f"{path}: GGUF architecture {arch!r} is not mapped to a model family here (mapped: "
            f"{', '.join(MODEL_TYPES)}); pass the model's config.json instead"
        )
    config: dict[str, Any] = {"model_type": MODEL_TYPES[arch]}
    for key, field in FIELDS.items():
        if f"{arch}.{key}" in metadata:
            config[field] = _one(metadata[f"{arch}.{key}"], f"{arch}.{key}", path)
    names = {t.name: t for t in tensors}
    embedding = names.get("token_embd.weight")
    if embedding is None or len(embedding.shape) != 2:
        raise EstimatorError(f"{path}: no 2-D token_embd.weight tensor; not a language model's GGUF")
    config["vocab_size"] = embedding.shape[1]  # GGUF lists dimensions innermost first: [d, V]
    config["tie_word_embeddings"] = "output.weight" not in names
    if f"{arch}.expert_count" in metadata:
        experts = _one(metadata[f"{arch}.expert_count"], f"{arch}.expert_count", path)
        if experts:
            config["model_type"] = WITH_EXPERTS.get(arch, config["model_type"])
            config[expert_count(config["model_type"])] = experts
    if config["model_type"] == "qwen2_moe" and "shared_expert_intermediate_size" not in config:
        config["shared_expert_intermediate_size"] = 0
    config["attention_bias"] = "blk.0.attn_q.bias" in names
    config["torch_dtype"] = "bfloat16"
    return config


def spec_from_gguf(path: Path, name: str | None = None) -> ModelSpec:
    """The spec of a GGUF file's model, read as its config.json would be."""
    from estimator.hf_config import spec_from_config

    metadata, tensors = read_gguf(path)
    config = gguf_config(metadata, tensors, path)
    own = metadata.get("general.name")
    config["_name_or_path"] = printable(own, 120) if isinstance(own, str) and own.strip() else printable(path.stem)
    note = f"read from the GGUF metadata of {path.name} (general.architecture {metadata['general.architecture']})"
    return spec_from_config(config, path, name, notes=(note,))

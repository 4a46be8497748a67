"""From a spec to what transformers needs: a config.json-equivalent dict, and a shrunken twin.

No torch here: these are plain data transformations, tested without the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.families import family
from estimator.specs import ModelSpec, validate_spec
from estimator.stores.targets import lora_params, resolve_targets

if TYPE_CHECKING:
    from estimator.query import Query

TWIN_VOCAB = 128
TWIN_WIDTH = 32  # hidden and MLP width of a twin where they do not fix head_dim
MAX_TWIN_ADAPTER_BYTES = 2**30  # the real LoRA a twin is saved with, created in float32: checked before any work


def transformers_config(spec: ModelSpec) -> dict[str, Any]:
    """The config.json a transformers model of this spec is built from (``model_type`` included).

    The inverse of :func:`estimator.hf_config.spec_from_hf_config`: reading it back gives the same
    architecture (tested). Token ids are set to None so that tiny twin vocabularies stay valid.
    """
    return {
        "model_type": spec.model_type,
        "vocab_size": spec.vocab_size,
        "num_hidden_layers": spec.num_hidden_layers,
        "tie_word_embeddings": spec.tie_word_embeddings,
        "bos_token_id": None,
        "eos_token_id": None,
        "pad_token_id": None,
        **family(spec.model_type).to_config(spec),
    }


def twin_layers(spec: ModelSpec) -> list[int]:
    """Indices of one layer of each kind (mixer and MLP) in order of appearance, at least two layers."""
    kinds = list(
        zip(
            spec.layer_types or spec.layer_windows(),
            spec.mlp_layer_types or ("dense",) * spec.num_hidden_layers,
            strict=True,
        )
    )
    first = list(dict.fromkeys(kinds))
    chosen = [kinds.index(kind) for kind in first]
    if len(chosen) == 1:
        chosen.append(chosen[0] + 1 if spec.num_hidden_layers > 1 else chosen[0])
    return chosen


def twin_spec(spec: ModelSpec, max_tokens: int) -> tuple[ModelSpec, list[str]]:
    """A shrunken model with the same kinds of layer and the same adapter structure, small enough to hold
    a real adapter in memory (what peft creates and saves is measured on it).

    Kept: heads, head_dim, and one layer of each kind (mixer and MLP). Shrunk: layers, vocabulary, the
    hidden and MLP widths where they do not set head_dim, experts. A family adjusts what its own fields
    need (``Family.twin``).
    """
    layers = twin_layers(spec)
    update: dict[str, Any] = {
        "name": f"{spec.name}-twin",
        "display_name": f"{spec.display_name} (shrunken twin)",
        "num_hidden_layers": len(layers),
        "vocab_size": TWIN_VOCAB,
        "intermediate_size": TWIN_WIDTH,
        "notes": (),
    }
    reasons = [
        f"Twin: {len(layers)} layers (one of each kind), vocabulary {TWIN_VOCAB}, MLP width {TWIN_WIDTH}"
        + (", 2 experts" if spec.is_moe else "")
        + "; a real adapter is created and saved on it, and its bytes compared with the formula for the twin."
    ]
    if spec.model_type in ("falcon", "gpt2"):
        reasons.append(f"hidden_size stays {spec.hidden_size:,}: {spec.model_type} derives head_dim from it.")
    else:
        heads = spec.num_attention_heads or 1  # transformers insists hidden_size be a multiple of the heads
        update["hidden_size"] = heads * -(-TWIN_WIDTH // heads)
    if spec.mlp_layer_types is not None:
        update["mlp_layer_types"] = tuple(spec.mlp_layer_types[i] for i in layers)
    if spec.is_moe:  # every twin layer routes to experts: the layer the adapter file is about
        update.update(n_routed_experts=2, num_experts_per_tok=1, moe_intermediate_size=TWIN_WIDTH)
        update["mlp_layer_types"] = ("sparse",) * len(layers)
        if spec.shared_expert_intermediate_size is not None:
            update["shared_expert_intermediate_size"] = TWIN_WIDTH
    if spec.model_type == "gpt2":
        update["max_position_embeddings"] = max(max_tokens, spec.max_position_embeddings)
    if spec.layer_types is not None:
        update["layer_types"] = tuple(spec.layer_types[i] for i in layers)
    own = family(spec.model_type).twin
    if own is not None:
        update = own(spec, update)
    twin = validate_spec({**spec.to_dict(), **update}, spec.name, "report this as a bug")
    return twin, reasons


def check_twin_memory(q: Query) -> None:
    """Refuse, before any work, a rank whose real LoRA on the twin would not fit comfortably in memory:
    P₁ · r parameters of 4 bytes (peft creates them in float32)."""
    twin, _ = twin_spec(q.spec, 64)
    per_rank = lora_params(resolve_targets(twin, q.targets, q.experts), 1) * 4
    if per_rank * q.rank > MAX_TWIN_ADAPTER_BYTES:
        largest = MAX_TWIN_ADAPTER_BYTES // per_rank
        raise EstimatorError(
            f"validating rank {q.rank:,} would create a {per_rank * q.rank / 2**30:,.1f} GiB LoRA on the shrunken "
            f"twin; give --rank {largest:,} or less (at most {MAX_TWIN_ADAPTER_BYTES // 2**30} GiB)"
        )

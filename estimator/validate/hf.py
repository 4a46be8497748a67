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


def twin_layer_windows(spec: ModelSpec) -> tuple[int | None, ...]:
    """One twin layer per distinct kind of layer (full, or each window), at least two layers."""
    kinds: list[int | None] = []
    for window in spec.layer_windows():
        if window not in kinds:
            kinds.append(window)
    return tuple(kinds * 2) if len(kinds) == 1 else tuple(kinds)


def twin_spec(spec: ModelSpec, max_tokens: int) -> tuple[ModelSpec, list[str]]:
    """A shrunken model with the same cache per layer, and the reasons why the cache cannot change.

    Kept: KV heads, head_dim, query heads, the kinds of layer (full or sliding, and each window).
    Shrunk: layers (one or two per kind), vocabulary, and the hidden and MLP widths where they do
    not set head_dim (Falcon and GPT-2 derive head_dim from hidden_size, so theirs stay).
    """
    windows = twin_layer_windows(spec)
    update: dict[str, Any] = {
        "name": f"{spec.name}-twin",
        "display_name": f"{spec.display_name} (shrunken twin)",
        "num_hidden_layers": len(windows),
        "vocab_size": TWIN_VOCAB,
        "intermediate_size": TWIN_WIDTH,
        "notes": (),
    }
    cache = (
        f"the latent (kv_lora_rank {spec.kv_lora_rank}, qk_rope_head_dim {spec.qk_rope_head_dim}) or its per-head "
        f"expansion ({spec.num_attention_heads} heads of {spec.qk_nope_head_dim} + {spec.qk_rope_head_dim} and "
        f"{spec.v_head_dim})"
        if spec.is_mla
        else f"2 × K × head_dim values ({spec.num_key_value_heads} × {spec.head_dim} here)"
    )
    reasons = [
        f"A layer caches {cache} per token; vocabulary, hidden and MLP widths, experts and the other layers never "
        "enter that product, so the twin keeps the attention's heads and widths and each kind of layer, and "
        "shrinks the rest.",
        f"Twin: {len(windows)} layers (one or two of each kind), vocabulary {TWIN_VOCAB}, MLP width {TWIN_WIDTH}"
        + (", 2 experts" if spec.is_moe else "")
        + "; the measured bytes of each twin layer are summed over the real layers of the same kind.",
    ]
    if spec.model_type in ("falcon", "gpt2"):
        reasons.append(f"hidden_size stays {spec.hidden_size:,}: {spec.model_type} derives head_dim from it.")
    else:
        heads = spec.num_attention_heads  # transformers insists hidden_size be a multiple of the heads
        update["hidden_size"] = heads * -(-TWIN_WIDTH // heads)
    if spec.is_moe:
        update.update(
            n_routed_experts=2,
            num_experts_per_tok=1,
            moe_intermediate_size=TWIN_WIDTH,
            mlp_layer_types=("sparse",) * len(windows),
        )
        if spec.shared_expert_intermediate_size is not None:
            update["shared_expert_intermediate_size"] = TWIN_WIDTH
    if spec.model_type == "gpt2":
        update["max_position_embeddings"] = max(max_tokens, spec.max_position_embeddings)
    if spec.layer_types is not None:
        update["layer_types"] = tuple("full_attention" if w is None else "sliding_attention" for w in windows)
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

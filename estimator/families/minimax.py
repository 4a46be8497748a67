"""MiniMax-Text-01 (``minimax``): lightning (linear) attention layers between softmax attention layers, and a
mixture of experts in every layer.

What transformers 5.24's ``MiniMaxDecoderLayer`` builds, by ``layer_types`` (absent: ``full_attention`` on even
layers, ``linear_attention`` on odd ones, as ``MiniMaxConfig.__post_init__`` writes them):

- ``linear_attention`` (``MiniMaxLightningAttention``): ``qkv_proj`` (d -> 3 H d_h), ``output_gate``
  (d -> H d_h), ``out_proj`` (H d_h -> d), no biases, an RMSNorm of H d_h. It keeps no keys or values: its
  state is K^T V per head, H · d_h · d_h elements in the model's dtype, which transformers' ``MiniMaxCache``
  holds in ``linear_cache`` (beside the cache's ``layers``).
- ``full_attention`` (``MiniMaxAttention``): q, k, v, o without biases (H and K heads of d_h; d_h = hidden / H
  unless ``head_dim``; K = H when ``num_key_value_heads`` is null).
- MLP: ``num_local_experts`` (alias ``num_experts``) experts of width ``intermediate_size``, top
  ``num_experts_per_tok``: fused ``mlp.experts.gate_up_proj`` and ``down_proj``, the router ``mlp.gate`` a bare
  weight E × d; the checkpoint's per-expert names are Mixtral's (``block_sparse_moe.experts.{i}.w1/w3/w2``).
- Two RMSNorms per layer, the final norm; embeddings untied by default.

The alpha/beta residual factors and ``block_size`` change no count. Refused in one line: an ``attn_type_list``
(MiniMax's own code; transformers reads ``layer_types``) that disagrees with the layer map, a nonzero
``shared_intermediate_size`` (transformers builds no shared expert), and a ``sliding_window``: transformers
masks softmax attention to the window while ``MiniMaxCache`` keeps every token, which the estimate does not model.

At H 64 and d_h 128 the lightning state is 64 · 128 · 128 · 2 = 2,097,152 bytes per layer in bf16.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from estimator.errors import EstimatorError
from estimator.families import Family, Reader, head_dim_or_derived
from estimator.families.conventions import Conventions, PeftConventions
from estimator.families.moe import routed_experts
from estimator.families.schema import SIZE_OR_ZERO, counts, words
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import attention_maps, embedding_and_final_norm, grouped, rms_norms, roles
from estimator.layout.recurrent import RecurrentState

if TYPE_CHECKING:
    from estimator.layout import Mixer
    from estimator.specs import ModelSpec

_DEFAULTS = {  # MiniMaxConfig's defaults for absent keys
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "num_experts_per_tok": 2,
    "num_local_experts": 8,  # num_experts is its alias
}
LINEAR, FULL = "linear_attention", "full_attention"
FIELDS = {"layer_types": words(FULL, LINEAR), "attn_type_list": counts(0, 1), "shared_intermediate_size": SIZE_OR_ZERO}


def read(r: Reader) -> dict[str, Any]:
    if r.config.get("sliding_window") is not None:
        raise EstimatorError(
            f"{r.path}: sliding_window is {str(r.config['sliding_window'])[:20]}: transformers masks MiniMax's softmax "
            f"attention to it while its cache keeps every token; not modelled: set it to null"
        )
    if r.config.get("shared_intermediate_size"):
        raise EstimatorError(
            f"{r.path}: shared_intermediate_size is {r.config['shared_intermediate_size']}, but transformers' MiniMax "
            f"builds no shared expert; not modelled: set it to 0"
        )
    n = r.field("num_hidden_layers", _DEFAULTS)
    types = r.config.get("layer_types") or [FULL if (i + 1) % 2 else LINEAR for i in range(n)]
    if len(types) != n:
        raise EstimatorError(f"{r.path}: layer_types has {len(types)} entries for {n} layers; fix the config.json")
    attn_types = r.config.get("attn_type_list")
    if attn_types is not None and [FULL if t else LINEAR for t in attn_types] != list(types):
        raise EstimatorError(
            f"{r.path}: attn_type_list (MiniMax's own code) disagrees with the layer_types transformers 5.24 reads "
            f"(absent: softmax on even layers); write layer_types: 0 -> linear_attention, 1 -> full_attention"
        )
    hidden, heads = r.field("hidden_size", _DEFAULTS), r.field("num_attention_heads", _DEFAULTS)
    kv = r.get("num_key_value_heads", 8, "8 (MiniMaxConfig default)", null_is_default=False)
    width = r.field("intermediate_size", _DEFAULTS)
    return {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": width,
        "moe_intermediate_size": width,
        "num_attention_heads": heads,
        "num_key_value_heads": heads if kv is None else kv,
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": r.field("vocab_size", _DEFAULTS),
        "max_position_embeddings": r.field("max_position_embeddings", _DEFAULTS),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "layer_types": tuple(types),
        "n_routed_experts": r.field("num_local_experts", _DEFAULTS),
        "num_experts_per_tok": r.field("num_experts_per_tok", _DEFAULTS),
        "mlp_layer_types": ("sparse",) * n,
    }


def lightning(spec: ModelSpec) -> RecurrentState:
    """The lightning layer's state: K^T V per head, H · d_h · d_h elements, no convolution (H 64, d_h 128:
    1,048,576)."""
    h, dh = spec.attention_heads, spec.attention_head_dim
    return RecurrentState("lightning attention", 0, 0, h * dh * dh)


def build(spec: ModelSpec) -> Layout:
    """One group per token mixer, every layer with the same routed experts."""
    d, h, dh = spec.hidden_size, spec.attention_heads, spec.attention_head_dim
    inner = h * dh
    linear_maps = (
        LinearMap("self_attn.qkv_proj", d, 3 * inner, False, roles("q", "k", "v"), "attention"),
        LinearMap("self_attn.output_gate", d, inner, False, roles("q", "k", "v"), "attention"),
        LinearMap("self_attn.out_proj", inner, d, False, roles("o"), "attention"),
    )
    mixers: dict[str, tuple[Mixer, tuple[LinearMap, ...], tuple[ParamTensor, ...]]] = {
        LINEAR: (lightning(spec), linear_maps, rms_norms(inner, ("self_attn.norm",))),
        FULL: (Attention(h, spec.kv_heads, dh), attention_maps(d, inner, spec.kv_heads * dh, False, False), ()),
    }
    experts = routed_experts(spec, "block_sparse_moe.experts", ("w1", "w3", "w2"), "block_sparse_moe.gate", True)
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))

    def group(kind: Any, layers: int) -> LayerGroup:
        mixer, maps, tensors = mixers[cast(str, kind)]
        return LayerGroup(layers, mixer, (*maps, experts), (*tensors, *norms))

    types = list(spec.layer_types or (FULL,) * spec.num_hidden_layers)
    return Layout(grouped(types, group), embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings))


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.moe_intermediate_size,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads,
        "head_dim": spec.head_dim,
        "max_position_embeddings": spec.max_position_embeddings,
        "layer_types": list(spec.layer_types or ()),
        "num_local_experts": spec.n_routed_experts,
        "num_experts_per_tok": spec.num_experts_per_tok,
    }


# peft converts its expert and router names to transformers 5's fused tensors
CONVENTIONS = {"minimax": Conventions(peft=PeftConventions(converts_experts=True))}

FAMILIES = [Family(("minimax",), read, build, to_config, fields=FIELDS, conventions=CONVENTIONS)]

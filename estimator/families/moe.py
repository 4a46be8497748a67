"""Mixtures of experts on a Llama-style attention: mixtral, qwen2_moe, qwen3_moe.

- mixtral: ``num_local_experts`` experts of width ``intermediate_size`` in every layer; router d -> E.
- qwen2_moe: ``num_experts`` experts of width ``moe_intermediate_size``, plus one gated shared
  expert (``shared_expert_intermediate_size``) with a scalar gate ``shared_expert_gate`` (d -> 1);
  q, k, v biases from ``qkv_bias`` (default true). A layer is sparse unless listed in
  ``mlp_only_layers``, and only every ``decoder_sparse_step``-th layer. Windows by ``layer_types`` as
  Qwen2MoeConfig writes them (``sliding_window`` 0 while ``use_sliding_window`` is false: no layer slides).
- qwen3_moe: as qwen2_moe without the shared expert, no biases by default, q and k RMSNorm; transformers 5
  writes the expert count as ``num_local_experts`` (``num_experts``, as earlier releases wrote it, is its alias).

Experts are :class:`~estimator.layout.MoE` values, laid out per expert (the checkpoints, transformers
< 5: ``experts.{i}.gate_proj`` ..., Mixtral's ``w1``/``w3``/``w2``, routers as ``nn.Linear``) or as
transformers >= 5's fused 3-D tensors (``mlp.experts.gate_up_proj``, ``mlp.experts.down_proj``;
routers as bare weights).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from estimator.errors import EstimatorError
from estimator.families import Family, Reader, attention_config, head_dim_or_derived, windowed_sparse_layout
from estimator.families.conventions import Conventions, GgufConventions, PeftConventions
from estimator.families.schema import SIZE_OR_ZERO, flag
from estimator.layout import Layout, LinearMap
from estimator.layout.groups import attention_maps, gated_mlp, rms_norms, roles
from estimator.layout.moe import MoE

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

GATED_NAMES = ("gate_proj", "up_proj", "down_proj")

_EXPERTS = {
    "mixtral": ("num_local_experts", 8, 2),
    "qwen2_moe": ("num_experts", 60, 4),
    "qwen3_moe": ("num_local_experts", 128, 8),  # transformers 5 writes it so; num_experts is its alias
}


# sliding_window 0: Qwen2MoeConfig writes it so when use_sliding_window is false (no layer slides).
FIELDS = {"norm_topk_prob": flag, "sliding_window": SIZE_OR_ZERO}


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.need("num_attention_heads")
    n = r.need("num_hidden_layers")
    experts_key, experts_default, top_k_default = _EXPERTS[r.model_type]
    fields: dict[str, Any] = {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": r.need("intermediate_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": _kv_heads(r, heads),
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": r.need("vocab_size"),
        "max_position_embeddings": r.get(
            "max_position_embeddings",
            131072 if r.model_type == "mixtral" else 32768,
            f"({r.model_type} config default)",
        ),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "n_routed_experts": r.get(experts_key, experts_default, f"{experts_default} ({r.model_type} config default)"),
        "num_experts_per_tok": r.get("num_experts_per_tok", top_k_default, f"{top_k_default} (config default)"),
    }
    if r.model_type == "mixtral":
        fields["moe_intermediate_size"] = fields["intermediate_size"]
        fields["mlp_layer_types"] = ("sparse",) * n
        fields["sliding_window"] = _window(r, r.get("sliding_window", None))
        return fields
    fields["moe_intermediate_size"] = r.get("moe_intermediate_size", 1408 if r.model_type == "qwen2_moe" else 768)
    dense = set(r.get("mlp_only_layers", []) or [])
    step = r.get("decoder_sparse_step", 1)
    fields["mlp_layer_types"] = tuple("sparse" if i not in dense and (i + 1) % step == 0 else "dense" for i in range(n))
    if r.model_type == "qwen2_moe":
        fields["attention_bias"] = r.get("qkv_bias", True)
        fields["shared_expert_intermediate_size"] = r.get("shared_expert_intermediate_size", 5632)
        fields.update(_qwen2_moe_windows(r, n))
    else:
        fields["attention_bias"] = r.get("attention_bias", False)
        if r.get("use_sliding_window", False):
            fields["sliding_window"] = _window(r, r.get("sliding_window", 4096))
    fields["family_fields"] = (("norm_topk_prob", bool(r.get("norm_topk_prob", False))),)
    return fields


def _kv_heads(r: Reader, heads: Any) -> Any:
    """KV heads: the config's; absent, the class default; null, as many as query heads for Mixtral (its
    config class says so; the Qwen ones would fail on it)."""
    default = {"mixtral": 8, "qwen2_moe": 16, "qwen3_moe": 4}[r.model_type]
    if r.model_type == "mixtral" and "num_key_value_heads" in r.config and r.config["num_key_value_heads"] is None:
        r.note("num_key_value_heads is null: as many KV heads as query heads, as MixtralConfig does")
        return heads
    return r.get("num_key_value_heads", default, f"{default} KV heads ({r.model_type} config default)")


def _window(r: Reader, window: Any) -> Any:
    """The window every layer slides over (None: full attention); 0 is refused (no tokens to attend)."""
    if window == 0:
        raise EstimatorError(f"{r.path}: sliding_window is 0, a window of no tokens; give the real window or null")
    return window


def _qwen2_moe_windows(r: Reader, n: int) -> dict[str, Any]:
    """Qwen2MoeConfig's layer_types: the config's, else sliding on odd-numbered layers below max_window_layers
    where use_sliding_window; the window is sliding_window where use_sliding_window, else 0 (as transformers 5
    writes it: no sliding layer then). A sliding layer with no window is refused."""
    use = r.get("use_sliding_window", False)
    first = r.get("max_window_layers", 28)
    derived = ["sliding_attention" if use and (i + 1) % 2 and i < first else "full_attention" for i in range(n)]
    types = r.config.get("layer_types") or derived
    if len(types) != n:
        raise EstimatorError(f"{r.path}: layer_types lists {len(types)} layers, not num_hidden_layers ({n}); fix it")
    if "sliding_attention" not in types:
        return {}
    window = r.get("sliding_window", 4096, "4,096 (Qwen2MoeConfig default)", null_is_default=False) if use else 0
    if not window:
        raise EstimatorError(
            f"{r.path}: layer_types has sliding layers but no window (use_sliding_window {use}, sliding_window "
            f"{r.config.get('sliding_window')}); give use_sliding_window true and a sliding_window"
        )
    return {"sliding_window": window, "layer_types": tuple(types)}


class ExpertShape(TypedDict):
    experts: int
    top_k: int
    d_model: int
    width: int


def expert_shape(spec: ModelSpec) -> ExpertShape:
    """E, top-k, d and F of the spec's routed experts, as every expert layout takes them: ``n_routed_experts``,
    ``num_experts_per_tok``, ``hidden_size`` and ``moe_intermediate_size`` (Mixtral 8x7B: 8, 2, 4,096, 14,336)."""
    return ExpertShape(experts=spec.n_routed_experts or 0, top_k=spec.num_experts_per_tok or 0,
                       d_model=spec.hidden_size, width=spec.moe_intermediate_size or 0)  # fmt: skip


def routed_experts(spec: ModelSpec, prefix: str, names: tuple[str, str, str], router: str, linear: bool) -> MoE:
    """The routed experts of a sparse layer and its router (an ``nn.Linear`` in the checkpoint's code if ``linear``)."""
    return MoE(
        **expert_shape(spec),
        prefix=prefix,
        names=names,
        router=router,
        router_linear=linear,
        renormalised=spec.model_type == "mixtral" or bool(spec.option("norm_topk_prob", False)),
    )


def _sparse_maps(spec: ModelSpec) -> tuple[LinearMap | MoE, ...]:
    if spec.model_type == "mixtral":
        return (routed_experts(spec, "block_sparse_moe.experts", ("w1", "w3", "w2"), "block_sparse_moe.gate", True),)
    maps: tuple[LinearMap | MoE, ...] = (routed_experts(spec, "mlp.experts", GATED_NAMES, "mlp.gate", True),)
    if spec.shared_expert_intermediate_size:  # qwen2_moe: one gated shared expert and its scalar gate
        d = spec.hidden_size
        maps += gated_mlp("mlp.shared_expert", d, spec.shared_expert_intermediate_size)
        maps += (LinearMap("mlp.shared_expert_gate", d, 1, False, roles("router"), "mlp"),)
    return maps


def build(spec: ModelSpec) -> Layout:
    """One group per (window, dense or sparse MLP) kind of layer."""
    d = spec.hidden_size
    q_out, kv_out = spec.attention_heads * spec.attention_head_dim, spec.kv_heads * spec.attention_head_dim
    o_bias = spec.attention_bias and spec.model_type == "qwen3_moe"
    attention = attention_maps(d, q_out, kv_out, spec.attention_bias, o_bias)
    mlps = {"dense": gated_mlp("mlp", d, spec.mlp_width), "sparse": _sparse_maps(spec)}
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))
    if spec.model_type == "qwen3_moe":
        norms += rms_norms(spec.attention_head_dim, ("self_attn.q_norm", "self_attn.k_norm"))

    return windowed_sparse_layout(spec, attention, mlps, norms)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    config = {**attention_config(spec), "num_experts_per_tok": spec.num_experts_per_tok}
    if spec.model_type != "mixtral":
        config["norm_topk_prob"] = bool(spec.option("norm_topk_prob", False))
    if spec.model_type == "mixtral":
        config.update(num_local_experts=spec.n_routed_experts, sliding_window=spec.sliding_window)
        return config
    types = spec.mlp_layer_types or ()
    config[_EXPERTS[spec.model_type][0]] = spec.n_routed_experts
    config.update(
        moe_intermediate_size=spec.moe_intermediate_size,
        decoder_sparse_step=1,
        mlp_only_layers=[i for i, t in enumerate(types) if t == "dense"],
        use_sliding_window=spec.sliding_window is not None,
        sliding_window=spec.sliding_window,
    )
    if spec.model_type == "qwen2_moe":
        config.update(
            qkv_bias=spec.attention_bias, shared_expert_intermediate_size=spec.shared_expert_intermediate_size
        )
        if spec.layer_types is not None:
            config.update(layer_types=list(spec.layer_types), max_window_layers=spec.num_hidden_layers)
    else:
        config["attention_bias"] = spec.attention_bias
    return config


# peft converts Mixtral's and Qwen3-MoE's expert names, not Qwen2-MoE's; llama.cpp writes Mixtral as a llama with
# experts; Qwen3-MoE's training activations are validated to the byte (estimator.memory.activations).
_MIXTRAL_IA3 = (("k_proj", "v_proj", "w2"), ("w2",))
CONVENTIONS = {
    "mixtral": Conventions(peft=PeftConventions(converts_experts=True, ia3=_MIXTRAL_IA3),
                           gguf=GgufConventions(architecture="llama", expert_count="num_local_experts")),
    "qwen2_moe": Conventions(gguf=GgufConventions(architecture="qwen2moe", expert_count="num_experts")),
    "qwen3_moe": Conventions(peft=PeftConventions(converts_experts=True),
                             gguf=GgufConventions(architecture="qwen3moe", expert_count="num_experts"),
                             measured_activations=True),
}  # fmt: skip

FAMILIES = [
    Family(("mixtral", "qwen2_moe", "qwen3_moe"), read, build, to_config, fields=FIELDS, conventions=CONVENTIONS)
]

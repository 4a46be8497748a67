"""Meituan LongCat-Flash (``longcat_flash``): two MLA sublayers per layer, a shortcut MoE with zero-compute experts.

What transformers 5.24's ``LongcatFlashDecoderLayer`` builds, for each of ``num_layers`` layers (the config's
``num_hidden_layers`` is a property, 2 × ``num_layers``: one cache layer per attention sublayer):

- two attention sublayers ``self_attn.0`` and ``self_attn.1``, each DeepSeek-style MLA that always projects queries
  through a rank (q_a_proj d -> q_lora_rank, its RMSNorm, q_b_proj -> H · (nope + rope)), kv_a_proj_with_mqa
  (d -> kv_lora_rank + rope), its RMSNorm, kv_b_proj (kv_lora_rank -> H · (nope + v)), o_proj (H · v -> d);
  ``attention_bias`` on q_a, kv_a and o. Each caches its latent: kv_lora_rank + qk_rope_head_dim per token;
- two dense MLPs ``mlps.0`` and ``mlps.1`` (gate/up/down of ``ffn_hidden_size``), four RMSNorms
  (``input_layernorm.0/1``, ``post_attention_layernorm.0/1``);
- one shortcut MoE ``mlp``: the router ``mlp.router.classifier``, an ``nn.Linear`` d -> E + Z (Z =
  ``zero_expert_num`` identity experts, which compute nothing), top ``moe_topk`` of E + Z; fused experts
  ``gate_up_proj`` (E + Z) × 2F × d (the Z zero experts' rows are allocated and never read) and ``down_proj``
  E × d × F, F = ``expert_ffn_hidden_size``. ``e_score_correction_bias`` is a buffer, not a parameter.

Here the first sublayers (attention, MLP, the MoE) are one group of ``num_layers`` layers and the second sublayers
another: 2 × ``num_layers`` layers, each with its own latent cache. peft 0.21 converts the fused experts
(transformers' qwen2_moe conversion): all-linear adapts gate_up at 2r over E + Z experts, down at r over E, the
router at r, every attention map; the dense MLPs (named gate_proj, up_proj, down_proj) lose their adapters.

Defaults (d 6,144, H 64, q rank 1,536, kv rank 512, nope 128, rope 64, v 128), one attention sublayer:
6,144 · 1,536 + 1,536 · 64 · 192 + 6,144 · 576 + 512 · 64 · 256 + 64 · 128 · 6,144 + 1,536 + 512 = 90,572,800.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.families import Family, Reader
from estimator.families.conventions import Conventions, PeftConventions
from estimator.families.deepseek import mixer
from estimator.families.moe import GATED_NAMES
from estimator.families.schema import LAYERS, SIZE, SIZE_OR_ZERO, flag
from estimator.layout import LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import embedding_and_final_norm, gated_mlp, rms_norms, roles
from estimator.layout.moe import MoE

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

_DEFAULTS = {  # LongcatFlashConfig's defaults for absent keys
    "vocab_size": 131072,
    "hidden_size": 6144,
    "num_layers": 28,
    "num_attention_heads": 64,
    "max_position_embeddings": 131072,
    "ffn_hidden_size": 12288,
    "q_lora_rank": 1536,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "head_dim": 64,
    "v_head_dim": 128,
    "moe_topk": 12,
    "n_routed_experts": 512,
    "zero_expert_num": 256,
    "expert_ffn_hidden_size": 2048,
}
FIELDS = {
    "num_layers": LAYERS,
    "moe_topk": SIZE,
    "expert_ffn_hidden_size": SIZE,
    "zero_expert_num": SIZE_OR_ZERO,
    "qk_head_dim": SIZE,
    "router_bias": flag,
}


def _refuse(r: Reader, key: str, why: str) -> None:
    raise EstimatorError(f"{r.path}: {key} is {str(r.config.get(key))[:40]}, but {why}; not modelled: fix the config")


def _layers(r: Reader) -> int:
    """num_layers; else num_hidden_layers / 2 (the config's setter); both given, they must agree."""
    total = r.config.get("num_hidden_layers")
    if total is not None and total % 2:
        _refuse(r, "num_hidden_layers", "a LongCat-Flash layer holds two attention sublayers (it must be even)")
    if r.config.get("num_layers") is None and total is not None:
        return int(total) // 2
    layers: int = r.field("num_layers", _DEFAULTS)
    if total is not None and total != 2 * layers:
        _refuse(r, "num_hidden_layers", f"num_layers is {layers} (2 attention sublayers each: {2 * layers})")
    return layers


def read(r: Reader) -> dict[str, Any]:
    def field(key: str) -> Any:
        if key in r.config and r.config[key] is None:
            _refuse(r, key, "LongcatFlashConfig takes a number there")
        return r.field(key, _DEFAULTS)

    layers, heads = _layers(r), field("num_attention_heads")
    rope, nope = field("qk_rope_head_dim"), field("qk_nope_head_dim")
    kv = r.get("num_key_value_heads", heads, "as many KV heads as query heads (LongcatFlashConfig)")
    if kv != heads:
        _refuse(r, "num_key_value_heads", f"LongCat-Flash's MLA expands keys and values to all {heads} heads")
    if r.config.get("qk_head_dim") not in (None, nope + rope):
        _refuse(r, "qk_head_dim", f"its attention splits queries into qk_nope + qk_rope = {nope + rope}")
    if field("head_dim") != rope:
        _refuse(r, "head_dim", f"the rotary embedding takes its width, which must be qk_rope_head_dim ({rope})")
    if r.config.get("router_bias"):
        _refuse(r, "router_bias", "the router's bias is not modelled")
    if r.config.get("sliding_window") is not None or any(
        t != "full_attention" for t in r.config.get("layer_types") or ()
    ):
        _refuse(r, "sliding_window", "LongCat-Flash's attention reads no window (transformers' cache would keep one)")
    zero = r.get("zero_expert_num", _DEFAULTS["zero_expert_num"], "256 (LongcatFlashConfig default)") or 0
    if zero:
        r.note(
            f"{zero} zero-compute (identity) experts beside the routed ones: the router picks top-k of both; "
            "active parameters count k real experts, the most a token passes through"
        )
    if r.config.get("num_nextn_predict_layers"):
        r.note("the checkpoint's multi-token-prediction layers (model.mtp) are not part of the transformers model")
    return {
        "num_hidden_layers": 2 * layers,
        "hidden_size": field("hidden_size"),
        "intermediate_size": field("ffn_hidden_size"),
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "head_dim": nope + rope,
        "vocab_size": field("vocab_size"),
        "max_position_embeddings": field("max_position_embeddings"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
        "kv_lora_rank": field("kv_lora_rank"),
        "q_lora_rank": field("q_lora_rank"),
        "qk_rope_head_dim": rope,
        "qk_nope_head_dim": nope,
        "v_head_dim": field("v_head_dim"),
        "n_routed_experts": field("n_routed_experts"),
        "num_experts_per_tok": field("moe_topk"),
        "moe_intermediate_size": field("expert_ffn_hidden_size"),
        "mlp_layer_types": ("sparse", "dense") * layers,  # the first sublayer holds the shortcut MoE
        "family_fields": (("zero_expert_num", zero),),
    }


def _attention(spec: ModelSpec, i: int) -> tuple[LinearMap, ...]:
    d, h, bias, p = spec.hidden_size, spec.attention_heads, spec.attention_bias, f"self_attn.{i}"
    q_rank, kv_rank, rope = spec.need("q_lora_rank"), spec.need("kv_lora_rank"), spec.need("qk_rope_head_dim")
    nope, v = spec.need("qk_nope_head_dim"), spec.need("v_head_dim")
    return (
        LinearMap(f"{p}.q_a_proj", d, q_rank, bias, roles("q"), "attention"),
        LinearMap(f"{p}.q_b_proj", q_rank, h * (nope + rope), False, roles("q"), "attention"),
        LinearMap(f"{p}.kv_a_proj_with_mqa", d, kv_rank + rope, bias, roles("k", "v"), "attention"),
        LinearMap(f"{p}.kv_b_proj", kv_rank, h * (nope + v), False, roles("k", "v"), "attention"),
        LinearMap(f"{p}.o_proj", h * v, d, bias, roles("o"), "attention"),
    )


def _sublayer(spec: ModelSpec, i: int, experts: tuple[MoE, ...]) -> LayerGroup:
    """The i-th sublayer of every layer: its MLA, dense MLP and norms (the first also holds the MoE)."""
    d = spec.hidden_size
    norms = rms_norms(d, (f"input_layernorm.{i}", f"post_attention_layernorm.{i}"))
    norms += (
        ParamTensor(f"self_attn.{i}.q_a_layernorm", spec.need("q_lora_rank"), "norm"),
        ParamTensor(f"self_attn.{i}.kv_a_layernorm", spec.need("kv_lora_rank"), "norm"),
    )
    maps: tuple[LinearMap | MoE, ...] = (*_attention(spec, i), *experts, *gated_mlp(f"mlps.{i}", d, spec.mlp_width))
    return LayerGroup(spec.num_hidden_layers // 2, mixer(spec), maps, norms)


def build(spec: ModelSpec) -> Layout:
    """Two groups of num_layers: the first sublayers (with the shortcut MoE), then the second ones.

    A token passes through at most top-k real experts (fewer when it picks zero experts).
    """
    moe = MoE(
        experts=spec.need("n_routed_experts"),
        top_k=spec.need("num_experts_per_tok"),
        d_model=spec.hidden_size,
        width=spec.need("moe_intermediate_size"),
        prefix="mlp.experts",
        names=GATED_NAMES,
        router="mlp.router.classifier",
        zero_experts=int(spec.option("zero_expert_num", 0)),
    )
    groups = (_sublayer(spec, 0, (moe,)), _sublayer(spec, 1, ()))
    return Layout(groups, embedding_and_final_norm(spec.vocab_size, spec.hidden_size, spec.tie_word_embeddings))


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        "num_layers": spec.num_hidden_layers // 2,
        "hidden_size": spec.hidden_size,
        "ffn_hidden_size": spec.mlp_width,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_attention_heads,
        "max_position_embeddings": spec.max_position_embeddings,
        "attention_bias": spec.attention_bias,
        "q_lora_rank": spec.q_lora_rank,
        "kv_lora_rank": spec.kv_lora_rank,
        "qk_nope_head_dim": spec.qk_nope_head_dim,
        "qk_rope_head_dim": spec.qk_rope_head_dim,
        "head_dim": spec.qk_rope_head_dim,
        "v_head_dim": spec.v_head_dim,
        "n_routed_experts": spec.n_routed_experts,
        "zero_expert_num": spec.option("zero_expert_num", 0),
        "moe_topk": spec.num_experts_per_tok,
        "expert_ffn_hidden_size": spec.moe_intermediate_size,
    }


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """One layer (its two sublayers), the first with the MoE; one zero expert beside the twin's experts."""
    return {**update, "num_hidden_layers": 2, "mlp_layer_types": ("sparse", "dense"),
            "family_fields": (("zero_expert_num", min(1, int(spec.option("zero_expert_num", 0)))),)}  # fmt: skip


# peft converts its expert and router names to transformers 5's fused tensors
CONVENTIONS = {"longcat_flash": Conventions(peft=PeftConventions(converts_experts=True))}

FAMILIES = [Family(("longcat_flash",), read, build, to_config, fields=FIELDS, twin=twin, conventions=CONVENTIONS)]

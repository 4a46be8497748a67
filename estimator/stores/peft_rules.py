"""peft's conventions, in one module: what its adapters target and how it sizes them, where the
architecture alone does not decide (peft 0.21 on transformers 5). What peft does with one model type (which
experts it converts, its IA3 and LN-tuning defaults, the maps all-linear skips, its own prefix sizing) is
declared by that type's family (:class:`~estimator.families.conventions.PeftConventions`); the rules here read it.

- ``all-linear``: every ``nn.Linear`` (and GPT-2 ``Conv1D``) of the decoder layers; never lm_head.
- Fused experts (transformers >= 5's 3-D tensors): for the families whose v4 expert and router names
  peft converts (Mixtral, Qwen3-MoE, DeepSeek V2/V3), an all-linear LoRA becomes LoRAs on the tensors:
  gate_up at rank 2r (gate's and up's r each, as one block), down at r, the router weight at r. peft
  moves the names gate_proj, up_proj and down_proj to those tensors, so the dense and shared MLPs of
  the same names (DeepSeek's first layers and shared experts) lose their adapters. Qwen2-MoE's names
  are not converted: its experts and router keep no adapter.
- DoRA cannot adapt bare (fused) tensors; IA3 scales ``nn.Linear`` modules only.
- IA3's default targets per family (``TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING``).
- Prefix tuning: peft sizes the prefix from config.json's heads, which differs from the cache for
  Falcon without ``num_key_value_heads`` and for MLA (:func:`peft_prefix_params`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from estimator.families import conventions_of
from estimator.layout import ExpertLayout, KVFormat

if TYPE_CHECKING:
    from estimator.families.conventions import PeftConventions
    from estimator.layout import LinearMap
    from estimator.specs import ModelSpec

PEFT_CONVERTED_NAMES = ("gate_proj", "up_proj", "down_proj")

# Families peft has no default IA3 targets for use the IA3 paper's choice: keys, values and the MLP's down projection.
IA3_FALLBACK_ROLES = frozenset({"k", "v", "down"})
IA3_FEEDFORWARD_NAMES = frozenset({"down_proj", "w2", "dense_4h_to_h", "c_proj", "fc_out", "fc2"})  # for --ia3-targets


def peft_conventions(spec: ModelSpec) -> PeftConventions:
    """What peft does with ``spec``'s model type, as its family declares it (:mod:`estimator.families.conventions`)."""
    return conventions_of(spec.model_type).peft


def converts(spec: ModelSpec, experts: ExpertLayout) -> bool:
    """Whether peft converts this family's expert and router names to transformers 5's fused tensors."""
    return experts is ExpertLayout.fused and peft_conventions(spec).converts_experts


def adaptable(spec: ModelSpec, linear: LinearMap, experts: ExpertLayout) -> bool:
    """Whether peft can put a LoRA on this map under the expert layout.

    An ``nn.Linear`` can, except, in the fused layout of a family peft converts, a module named like the
    experts' projections (peft moves those names to the expert tensors, whatever block holds them: AFMoE's
    attention output gate ``self_attn.gate_proj`` loses its adapter too). A bare tensor can only where
    peft's conversion adapts it (the fused experts and the router).
    """
    if linear.short_name in peft_conventions(spec).all_linear_skips:
        return False
    if converts(spec, experts):
        if linear.module:
            return linear.short_name not in PEFT_CONVERTED_NAMES
        return linear.expert or "router" in linear.roles
    return linear.module


def rank_factor(spec: ModelSpec, linear: LinearMap, experts: ExpertLayout) -> int:
    """Rank multiplier peft gives a map: 2 for the fused gate_up of converted experts (gate's r and up's r)."""
    return 2 if converts(spec, experts) and linear.expert and linear.roles == {"gate", "up"} else 1


def ia3_default(spec: ModelSpec) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """peft's default IA3 target names and the feed-forward ones among them, or None where it has none."""
    return peft_conventions(spec).ia3


def peft_prefix_params(spec: ModelSpec, virtual_tokens: int) -> tuple[int, str] | None:
    """What peft's prefix tuning trains where it differs from the cache of n tokens, and why; else None.

    peft sizes a prefix as n · 2 · L · (KV heads) · (head_dim) from config.json's fields:
    - Falcon without ``num_key_value_heads`` in its config: all H heads of hidden / H
      (Falcon-7B, n = 20: 20 · 2 · 32 · 71 · 64, where the cache holds 1 KV head);
    - MLA: config.json's ``head_dim`` is the RoPE width, so n · 2 · L · K · qk_rope_head_dim, a shape
      DeepSeek's attention does not cache;
    - layers without a cache of their own (Gemma 3n's shared-KV layers, hybrids' recurrent and MLP-only
      layers): all L layers (Gemma 3n E4B, n = 20: 20 · 2 · 35 · 2 · 256 = 716,800, where the cache of 20
      tokens holds 20 layers' 409,600).
    """
    n, layers = virtual_tokens, spec.num_hidden_layers
    if spec.kv_lora_rank is not None and spec.qk_rope_head_dim is not None:
        why = (
            "peft sizes MLA prefixes from config head_dim (the RoPE width) × KV heads, a shape DeepSeek's attention "
            "does not cache; the estimate is the cache of n tokens in the chosen MLA form"
        )
        return n * 2 * layers * spec.kv_heads * spec.qk_rope_head_dim, why
    own = peft_conventions(spec).prefix  # the family's own rule (Falcon, MiMo-V2-Flash, Gemma 4), where it applies
    if own is not None and (sized := own(spec, virtual_tokens)) is not None:
        return sized
    from estimator.architecture import layout_of

    storing = sum(g.layers for g in layout_of(spec).groups if g.mixer.vectors(KVFormat()))
    if 0 < storing < layers:
        why = (
            f"peft sizes the prefix for all {layers} layers, but only {storing} hold a cache of their own (the others "
            "are recurrent, mix no tokens, or reuse earlier layers' keys and values); the estimate is the cache of "
            "n tokens"
        )
        return n * 2 * layers * spec.kv_heads * spec.attention_head_dim, why
    return None

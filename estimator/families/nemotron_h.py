"""Nemotron-H (NVIDIA's Nemotron-H 4B/8B/47B/56B, Nemotron Nano 2 and 3): one mixer per layer, by
``hybrid_override_pattern`` (or ``layers_block_type``): M = Mamba-2, * = attention, - = MLP, E = mixture of experts.

Every layer: one RMSNorm ``norm`` (d) and its ``mixer``:

- M: Mamba-2 (d_inner = ``mamba_num_heads`` · ``mamba_head_dim``, ``n_groups``, ``ssm_state_size``,
  ``conv_kernel``; in_proj/out_proj biases from ``use_bias``, conv bias from ``use_conv_bias``; see
  :mod:`estimator.families.ssm`);
- *: q, k, v, o without biases, ``head_dim`` (128 by default; transformers 5 ignores the older
  ``attention_head_dim``);
- -: a plain (ungated, relu²) MLP ``up_proj`` d -> F, ``down_proj`` F -> d (``mlp_bias``);
- E: a router (E × d, a float32 bare weight), E ungated experts of width ``moe_intermediate_size``
  (``experts.up_proj`` E × F × d, ``experts.down_proj`` E × d × F) and a shared ungated MLP of
  ``moe_shared_expert_intermediate_size``; with ``moe_latent_size``, fc1/fc2 latent projections around them.

``norm_f`` at the end; ``lm_head``, never tied (transformers 5.24's NemotronHForCausalLM ties nothing, whatever
``tie_word_embeddings`` says). ``layers_block_type`` wins over ``hybrid_override_pattern``, as NemotronHConfig reads
them; ``mamba_n_groups``, ``mamba_d_conv`` and ``mamba_conv_bias`` are read as the fields they stand for.
Layers without a token mixer (-, E) hold no cache. peft's LoRA refuses the Mamba ``out_proj`` on this model
type. The recurrent state is float32 in transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from estimator.errors import EstimatorError
from estimator.families import Family, Reader, attention_config, schema
from estimator.families.bamba import attention
from estimator.families.conventions import Conventions, PeftConventions, TransformersConventions
from estimator.families.ssm import (
    mamba2_checks,
    mamba2_config,
    mamba2_fields,
    mamba2_maps,
    mamba2_state,
    mamba2_tensors,
    mamba2_twin,
)
from estimator.layout import LayerGroup, Layout, LinearMap
from estimator.layout.groups import embedding_and_final_norm, grouped, rms_norms, roles
from estimator.layout.moe import MoE
from estimator.layout.recurrent import NoMixer
from estimator.units import DType

if TYPE_CHECKING:
    from collections.abc import Hashable

    from estimator.specs import ModelSpec

NAMES = {"heads": "mamba_num_heads", "head_dim": "mamba_head_dim", "groups": "n_groups", "state": "ssm_state_size",
         "kernel": "conv_kernel", "conv_bias": "use_conv_bias", "proj_bias": "use_bias"}  # fmt: skip
DEFAULTS = {"heads": 128, "head_dim": 64, "groups": 8, "state": 128, "kernel": 4}
_PATTERN = {"M": "linear_attention", "*": "full_attention", "-": "mlp", "E": "moe"}
_KIND = {"linear_attention": ("mamba", "none"), "full_attention": ("full_attention", "none"),
         "mlp": ("mlp", "dense"), "moe": ("mlp", "sparse")}  # fmt: skip
_LEGACY = {"mamba": "linear_attention", "attention": "full_attention"}  # transformers' _LEGACY_LAYER_TYPE_REMAP


def _pattern(value: Any) -> str | None:
    ok = isinstance(value, str) and len(value) <= schema.MAX_LAYERS and set(value) <= set(_PATTERN)
    return None if ok else "a string of M, *, - and E"


FIELDS: dict[str, schema.Check] = {
    **mamba2_checks(NAMES),
    "mamba_head_dim": schema.SIZE,
    "hybrid_override_pattern": _pattern,
    "layers_block_type": schema.words(*_KIND, *_LEGACY),
    **dict.fromkeys(("moe_shared_expert_intermediate_size", "moe_latent_size"), schema.SIZE),
}


@dataclass(frozen=True)
class UngatedMoE(MoE):
    """Routed experts of up (d -> F) and down (F -> d) only: 2 · d · F parameters each. With a latent MoE
    the experts work at the latent width while the router reads the hidden state (``router_in``)."""

    router_in: int = 0  # the router's input width, when not d_model

    @property
    def expert_params(self) -> int:
        return 2 * self.d_model * self.width

    def linears(self, fused: bool) -> tuple[LinearMap, ...]:
        d, f, e = self.d_model, self.width, self.experts
        up, down = (f"{self.prefix}.{name}" for name in self.names[1:])
        return (
            LinearMap(self.router, self.router_in or d, e, False, roles("router"), "mlp", module=False),
            LinearMap(up, d, f, False, roles("up"), "mlp", e, module=not fused, expert=True),
            LinearMap(down, f, d, False, roles("down"), "mlp", e, module=not fused, expert=True),
        )


def _types(r: Reader) -> list[str]:
    """layers_block_type where given (NemotronHConfig reads hybrid_override_pattern only without it)."""
    if r.config.get("layers_block_type") is None and (pattern := r.config.get("hybrid_override_pattern")) is not None:
        return [_PATTERN[c] for c in pattern]
    return [_LEGACY.get(t, t) for t in r.need("layers_block_type")]  # old names, as transformers remaps them


def _untied(r: Reader) -> bool:
    """False: transformers 5.24's NemotronHForCausalLM ties nothing (no tied weights keys), whatever the config."""
    if r.get("tie_word_embeddings", False):
        r.note("tie_word_embeddings is true, but transformers 5.24's NemotronHForCausalLM never ties: lm_head counted")
    return False


def read(r: Reader) -> dict[str, Any]:
    types = _types(r)
    n = r.get("num_hidden_layers", len(types))
    if n != len(types):
        raise EstimatorError(f"{r.path}: the layer pattern has {len(types)} layers, num_hidden_layers {n}; fix it")
    heads = r.need("num_attention_heads")
    head_dim = r.get("head_dim", 128, "128 (NemotronHConfig's default; attention_head_dim is not read)")
    kinds = [_KIND[t] for t in types]
    fields: dict[str, Any] = {
        "num_hidden_layers": n,
        "hidden_size": r.need("hidden_size"),
        "intermediate_size": r.get("intermediate_size", 21504, "21,504 (config default)"),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", 8, "8 KV heads (config default)"),
        "head_dim": head_dim,
        "vocab_size": r.get("vocab_size", 131072, "131,072 (config default)"),
        "max_position_embeddings": r.get("max_position_embeddings", 4096, "4,096 (config default)"),
        "tie_word_embeddings": _untied(r),
        "mlp_bias": r.get("mlp_bias", False),
        "layer_types": tuple(kind for kind, _ in kinds),
        **mamba2_fields(r, NAMES, DEFAULTS, None),
    }
    if "moe" in types:
        fields.update(
            n_routed_experts=r.get("n_routed_experts", 8, "8 experts (config default)"),
            num_experts_per_tok=r.get("num_experts_per_tok", 2, "2 (config default)"),
            moe_intermediate_size=r.get("moe_intermediate_size", 7688, "7,688 (config default)"),
            shared_expert_intermediate_size=r.get("moe_shared_expert_intermediate_size", 7688, "7,688 (default)"),
            mlp_layer_types=tuple(mlp for _, mlp in kinds),
        )
        if (latent := r.get("moe_latent_size", None)) is not None:
            fields["family_fields"] = (("moe_latent_size", latent),)
    return fields


def _moe(spec: ModelSpec) -> tuple[LinearMap | MoE, ...]:
    d, latent = spec.hidden_size, spec.option("moe_latent_size")
    width, shared = spec.need("moe_intermediate_size"), spec.need("shared_expert_intermediate_size")
    experts = UngatedMoE(spec.need("n_routed_experts"), spec.need("num_experts_per_tok"), latent or d, width,
                         "mixer.experts", ("", "up_proj", "down_proj"), "mixer.gate", router_linear=False,
                         router_in=d)  # fmt: skip
    maps: list[LinearMap | MoE] = [experts, *_ungated("mixer.shared_experts", d, shared, spec.mlp_bias)]
    if latent is not None:
        maps += [LinearMap("mixer.fc1_latent_proj", d, latent, spec.mlp_bias, roles("up"), "mlp"),
                 LinearMap("mixer.fc2_latent_proj", latent, d, spec.mlp_bias, roles("down"), "mlp")]  # fmt: skip
    return tuple(maps)


def _ungated(prefix: str, d: int, f: int, bias: bool) -> tuple[LinearMap, ...]:
    return (LinearMap(f"{prefix}.up_proj", d, f, bias, roles("up"), "mlp"),
            LinearMap(f"{prefix}.down_proj", f, d, bias, roles("down"), "mlp"))  # fmt: skip


def build(spec: ModelSpec) -> Layout:
    """One group per kind of layer: Mamba-2, attention, MLP, MoE; each with its one norm."""
    norm = rms_norms(spec.hidden_size, ("norm",))
    mixer, attention_linears = attention(spec, "mixer")

    def group(kind: Hashable, layers: int) -> LayerGroup:
        layer_type, mlp = cast(tuple[str, str], kind)
        if layer_type == "mamba":
            return LayerGroup(layers, mamba2_state(spec), mamba2_maps(spec, "mixer"),
                              (*norm, *mamba2_tensors(spec, "mixer")))  # fmt: skip
        if layer_type == "full_attention":
            return LayerGroup(layers, mixer, attention_linears, norm)
        maps = _moe(spec) if mlp == "sparse" else _ungated("mixer", spec.hidden_size, spec.mlp_width, spec.mlp_bias)
        return LayerGroup(layers, NoMixer(), maps, norm)

    tensors = embedding_and_final_norm(spec.vocab_size, spec.hidden_size, spec.tie_word_embeddings)
    return Layout(grouped(_kinds(spec), group), tensors)


def _kinds(spec: ModelSpec) -> list[tuple[str, str]]:
    """(mixer, MLP) per layer; an "mlp" layer is sparse only where mlp_layer_types says so."""
    mlps = spec.mlp_layer_types or ("dense",) * spec.num_hidden_layers
    return [(t, m if t == "mlp" else "none") for t, m in zip(spec.layer_types or (), mlps, strict=True)]


def to_config(spec: ModelSpec) -> dict[str, Any]:
    blocks = {("mamba", "none"): "linear_attention", ("full_attention", "none"): "full_attention",
              ("mlp", "dense"): "mlp", ("mlp", "sparse"): "moe"}  # fmt: skip
    config = {
        **attention_config(spec),
        "layers_block_type": [blocks[kind] for kind in _kinds(spec)],
        "mlp_bias": spec.mlp_bias,
        **mamba2_config(spec, NAMES),
    }
    if spec.is_moe:
        config.update(n_routed_experts=spec.n_routed_experts, num_experts_per_tok=spec.num_experts_per_tok,
                      moe_intermediate_size=spec.moe_intermediate_size, n_group=1, topk_group=1,
                      moe_shared_expert_intermediate_size=spec.shared_expert_intermediate_size,
                      moe_latent_size=spec.option("moe_latent_size"))  # fmt: skip
    return config


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """4 Mamba heads of 16; the MoE layers' experts as the generic twin shrinks them, other layers kept."""
    kinds = dict.fromkeys(_kinds(spec))
    update = {**update, "layer_types": tuple(t for t, _ in kinds)}
    if spec.is_moe:
        update["mlp_layer_types"] = tuple(m for _, m in kinds)
        if spec.option("moe_latent_size") is not None:
            update["family_fields"] = (("moe_latent_size", 16),)
    update["num_hidden_layers"] = len(kinds)
    return mamba2_twin(update, 64)


# peft's Mamba check refuses LoRA on out_proj, and ShadowPEFT cannot cut its layer pattern (the mirror keeps
# every layer and embedding); the Mamba-2 scan returns its last state in float32
CONVENTIONS = {
    "nemotron_h": Conventions(
        peft=PeftConventions(all_linear_skips=("out_proj",), shadow_unshrunk=True),
        transformers=TransformersConventions(state_dtype=DType.fp32),
    )
}

FAMILIES = [Family(("nemotron_h",), read, build, to_config, fields=FIELDS, twin=twin, conventions=CONVENTIONS)]

"""Zamba2 (Zyphra's Zamba2 1.2B, 2.7B, 7B): Mamba-2 layers, and hybrid layers that also run a shared transformer.

Every layer holds a Mamba-2 (``mamba``, d_inner = mamba_expand · d in ``n_mamba_heads`` heads, ``mamba_ngroups``,
``mamba_d_state``, ``mamba_d_conv``; in_proj/out_proj biases from ``add_bias_linear``; the conv1d always has a
bias in transformers 5.24, whatever ``use_conv_bias`` says) and an ``input_layernorm`` (d). A hybrid layer
(``layers_block_type`` "hybrid") first runs ``shared_transformer`` on [hidden, embedding] (2d wide):
``input_layernorm`` (2d), attention q, k, v (2d -> heads · head_dim, head_dim = ``attention_head_dim`` where
the config gives it, else 2d / heads), o (-> d), ``pre_ff_layernorm`` (d), ``feed_forward.gate_up_proj``
(d -> 2F) and ``down_proj`` (F -> d) (biases from ``add_bias_linear``), then its own ``linear`` (d -> d).

There are ``num_mem_blocks`` shared transformers, used in turn by the hybrid layers (block b = j mod M for the
j-th hybrid layer): their weights are tied, counted once per block, but each hybrid layer caches its own keys and
values, and peft adapts each hybrid layer's copy apart (LoRA per hybrid layer). Each block holds, for each hybrid
layer j of that block, an adapter (rank ``adapter_rank``) on gate_up (d -> r -> 2F) and, with
``use_shared_attention_adapter``, on q, k and v (2d -> r -> 2d each): tied too, and adapted by peft in every copy.

The recurrent state is float32 in transformers; the convolution state K columns in the model's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from estimator.errors import EstimatorError
from estimator.families import Family, Reader, schema
from estimator.families.conventions import Conventions, TransformersConventions
from estimator.families.ssm import mamba2_checks, mamba2_fields, mamba2_maps, mamba2_state, mamba2_tensors, mamba2_twin
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import attention_maps, embedding_and_final_norm, grouped, rms_norms, roles
from estimator.layout.recurrent import Parallel
from estimator.units import DType

if TYPE_CHECKING:
    from collections.abc import Hashable

    from estimator.specs import ModelSpec

NAMES = {"heads": "n_mamba_heads", "groups": "mamba_ngroups", "state": "mamba_d_state", "kernel": "mamba_d_conv",
         "conv_bias": "use_conv_bias", "proj_bias": "add_bias_linear"}  # fmt: skip
DEFAULTS = {"heads": 8, "groups": 1, "state": 64, "kernel": 4}
_TYPES = {"mamba": "mamba", "linear_attention": "mamba", "hybrid": "hybrid"}
FIELDS: dict[str, schema.Check] = {
    **mamba2_checks(NAMES),
    "layers_block_type": schema.words(*_TYPES),
    **dict.fromkeys(("mamba_expand", "num_mem_blocks", "adapter_rank", "attention_head_dim"), schema.SIZE),
    **dict.fromkeys(("attention_hidden_size", "mamba_headdim"), schema.SIZE),
    "hybrid_layer_ids": schema.counts(0, schema.MAX_LAYERS),
    **dict.fromkeys(("use_shared_attention_adapter", "use_long_context"), schema.flag),
}


@dataclass(frozen=True)
class TiedLinearMap(LinearMap):
    """A map whose weights another layer owns (a shared block's later use): no parameters of its own, but peft
    adapts it in every layer that uses it."""

    @property
    def weight_params(self) -> int:
        return 0

    @property
    def bias_params(self) -> int:
        return 0


def read(r: Reader) -> dict[str, Any]:
    hidden, heads = r.need("hidden_size"), r.need("num_attention_heads")
    expand = r.get("mamba_expand", 2, "mamba_expand 2 (config default)")
    default_types = ["mamba"] + (["mamba"] * 5 + ["hybrid"]) * 7 + ["mamba"] * 4 + ["hybrid"] + ["mamba"] * 3
    default_types += ["hybrid", "mamba", "mamba"]  # Zamba2Config's 54 layers
    types = [_TYPES[t] for t in r.get("layers_block_type", default_types, "54 layers, 9 hybrid (config default)")]
    head_dim = r.get("attention_head_dim", 2 * hidden // heads, "2 · hidden_size / heads: attention over [h, emb]")
    _refuse_untied_or_rederived(r, hidden, heads, expand, types)
    blocks = r.get("num_mem_blocks", 1, "one shared block (config default)")
    long = r.get("use_long_context", False)
    return {
        "num_hidden_layers": len(types),
        "hidden_size": hidden,
        "intermediate_size": r.get("intermediate_size", 4 * hidden, "4 · hidden_size, as transformers derives it"),
        "num_attention_heads": heads,
        "num_key_value_heads": r.get("num_key_value_heads", heads),
        "head_dim": head_dim,
        "vocab_size": r.get("vocab_size", 32000, "32,000 (config default)"),
        "max_position_embeddings": 16384 if long else r.get("max_position_embeddings", 4096, "4,096 (default)"),
        "tie_word_embeddings": r.get("tie_word_embeddings", True, "tied (Zamba2Config's default)"),
        "layer_types": tuple(types),
        **mamba2_fields(r, NAMES, DEFAULTS, expand * hidden),
        "mamba_conv_bias": True,  # Zamba2's conv1d always has a bias in transformers; use_conv_bias is not read
        "family_fields": (
            ("mamba_expand", expand),
            ("num_mem_blocks", blocks),
            ("use_shared_attention_adapter", r.get("use_shared_attention_adapter", False)),
            ("adapter_rank", r.get("adapter_rank", 128, "rank 128 (config default)")),
        ),
    }


def _refuse_untied_or_rederived(r: Reader, hidden: Any, heads: Any, expand: Any, types: list[str]) -> None:
    """Refuse what Zamba2's code cannot run or this family does not model: an untied config (transformers 5.24
    then ties none of the shared blocks either), and derived fields given other values than Zamba2Config
    derives (attention_hidden_size 2d: the attention reads [hidden, embedding]; mamba_headdim expand · d /
    heads; hybrid_layer_ids the hybrid layers of layers_block_type)."""
    if r.get("tie_word_embeddings", True) is False:
        raise EstimatorError(
            f"{r.path}: tie_word_embeddings false: transformers 5.24 then unties Zamba2's shared blocks too (every "
            "hybrid layer its own copy), which this family does not model; published Zamba2 configs tie"
        )
    derived = {
        "attention_hidden_size": 2 * hidden,
        "mamba_headdim": expand * hidden // r.get("n_mamba_heads", DEFAULTS["heads"]),
        "hybrid_layer_ids": [i for i, t in enumerate(types) if t == "hybrid"],
    }
    for key, value in derived.items():
        if r.config.get(key) is not None and r.config[key] != value:
            raise EstimatorError(
                f"{r.path}: {key} is {str(r.config[key])[:40]}, not {str(value)[:40]} as Zamba2Config derives it "
                "from the other fields; this family does not model it (fix the config.json)"
            )


def _shared_maps(spec: ModelSpec, indices: list[int], tied: bool) -> tuple[LinearMap, ...]:
    """The shared transformer's maps and its adapters (one per hybrid layer in ``indices``), as a hybrid layer
    holds them: ``<list>.{i}.0`` (in -> r) and ``<list>.{i}.1`` (r -> out) for each index i."""
    d, f, heads, kv, hd = spec.hidden_size, spec.mlp_width, spec.attention_heads, spec.kv_heads, spec.attention_head_dim
    rank, bias, cls = spec.option("adapter_rank", 128), spec.mamba_proj_bias, TiedLinearMap if tied else LinearMap
    attn, mlp = "shared_transformer.self_attn", "shared_transformer.feed_forward"
    maps = [cls(**vars(m)) for m in attention_maps(2 * d, heads * hd, kv * hd, False, False, attn)[:3]]
    maps += [cls(f"{attn}.o_proj", heads * hd, d, False, roles("o"), "attention"),
             cls(f"{mlp}.gate_up_proj", d, 2 * f, bias, roles("gate", "up"), "mlp"),
             cls(f"{mlp}.down_proj", f, d, bias, roles("down"), "mlp")]  # fmt: skip
    adapters = [(f"{mlp}.gate_up_proj_adapter_list", d, 2 * f, roles("gate", "up"), "mlp")]
    if spec.option("use_shared_attention_adapter", False):
        adapters += [(f"{attn}.linear_{x}_adapter_list", 2 * d, 2 * d, roles(x), "attention") for x in "qkv"]
    for i in indices:
        for prefix, d_in, d_out, role, block in adapters:
            maps += [cls(f"{prefix}.{i}.0", d_in, rank, False, role, block),  # type: ignore[arg-type]
                     cls(f"{prefix}.{i}.1", rank, d_out, False, role, block)]  # type: ignore[arg-type]  # fmt: skip
    return tuple(maps)


def hybrid_kinds(spec: ModelSpec) -> list[tuple[str, int, bool]]:
    """(layer type, shared block, whether this layer owns the block's weights) per layer."""
    blocks, seen = spec.option("num_mem_blocks", 1), 0
    kinds: list[tuple[str, int, bool]] = []
    for t in spec.layer_types or ():
        kinds.append((t, seen % blocks, seen < blocks) if t == "hybrid" else (t, -1, False))
        seen += t == "hybrid"
    return kinds


def build(spec: ModelSpec) -> Layout:
    """Mamba-2 layers; hybrid layers by shared block and by whether they own its weights (the first use)."""
    d = spec.hidden_size
    uses = [block for t, block, _ in hybrid_kinds(spec) if t == "hybrid"]
    mamba = (
        mamba2_maps(spec, "mamba_decoder.mamba"),
        (*mamba2_tensors(spec, "mamba_decoder.mamba"), *rms_norms(d, ("mamba_decoder.input_layernorm",))),
    )
    attention = Attention(spec.attention_heads, spec.kv_heads, spec.attention_head_dim)

    def group(kind: Hashable, layers: int) -> LayerGroup:
        layer_type, block, owner = cast(tuple[str, int, bool], kind)
        if layer_type == "mamba":
            maps, tensors = (
                mamba2_maps(spec, "mamba"),
                (*mamba2_tensors(spec, "mamba"), *rms_norms(d, ("input_layernorm",))),
            )
            return LayerGroup(layers, mamba2_state(spec), maps, tensors)
        shared = _shared_maps(spec, [i for i, b in enumerate(uses) if b == block], tied=not owner)
        norms: tuple[ParamTensor, ...] = ()
        if owner:
            norms = (ParamTensor("shared_transformer.input_layernorm", 2 * d, "norm"),
                     ParamTensor("shared_transformer.pre_ff_layernorm", d, "norm"))  # fmt: skip
        maps = (*mamba[0], LinearMap("linear", d, d, False, roles("o"), "attention"), *shared)
        return LayerGroup(layers, Parallel((attention, mamba2_state(spec))), maps, (*mamba[1], *norms))

    return Layout(
        grouped(hybrid_kinds(spec), group), embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings)
    )


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.mlp_width,
        "num_attention_heads": spec.attention_heads,
        "num_key_value_heads": spec.kv_heads,
        "max_position_embeddings": spec.max_position_embeddings,
        "layers_block_type": list(spec.layer_types or ()),
        "n_mamba_heads": spec.mamba_n_heads,
        "mamba_ngroups": spec.mamba_n_groups,
        "mamba_d_state": spec.mamba_d_state,
        "mamba_d_conv": spec.mamba_d_conv,
        "attention_head_dim": spec.head_dim,
        "add_bias_linear": spec.mamba_proj_bias,
        **{key: value for key, value in spec.family_fields},
    }


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """head_dim = 2 · the twin's hidden size / heads; d_inner = mamba_expand · hidden in 4 heads; adapter rank 8."""
    hidden = update["hidden_size"]
    options = {**dict(spec.family_fields), "adapter_rank": 8}
    update = {**update, "head_dim": 2 * hidden // spec.attention_heads, "family_fields": tuple(options.items())}
    return mamba2_twin(update, spec.option("mamba_expand", 2) * hidden)


# its Mamba scan returns the last state in float32, which the cache keeps
CONVENTIONS = {"zamba2": Conventions(transformers=TransformersConventions(state_dtype=DType.fp32))}

FAMILIES = [Family(("zamba2",), read, build, to_config, fields=FIELDS, twin=twin, conventions=CONVENTIONS)]

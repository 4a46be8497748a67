"""Architecture families: what each family's transformers code builds, and how its config reads.

A :class:`Family` gathers, for the model types it covers, three functions that must agree:
``read`` (config.json -> spec fields, applying the transformers defaults and overrides),
``build`` (spec -> :class:`~estimator.layout.Layout`, the layer groups transformers builds), and
``to_config`` (spec -> config.json, the inverse of ``read``, used to build the real model for validation).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.families.conventions import NONE, Conventions

if TYPE_CHECKING:
    from estimator.layout import Layout
    from estimator.specs import ModelSpec

_MISSING = object()

# transformers 5.24's ``attribute_map`` of each config class, {alias: the field it stands for}: a config.json
# may carry either name (earlier releases wrote some aliases as the field), and transformers reads both as one.
# The readers read the field's name; tests/test_config_defaults.py checks this table against transformers.
_EXPERTS_AS = {"num_local_experts": "n_routed_experts"}
_BLOCK_TYPES = {"layer_types": "layers_block_type"}
_DBRX_NAMES = {"num_attention_heads": "n_heads", "hidden_size": "d_model", "num_hidden_layers": "n_layers"}
_GPT2_NAMES = {"hidden_size": "n_embd", "max_position_embeddings": "n_positions", "num_attention_heads": "n_head"}
_ALIAS_GROUPS: tuple[tuple[tuple[str, ...], dict[str, str]], ...] = (
    (("gpt2", "gptj", "gpt_bigcode"), {**_GPT2_NAMES, "num_hidden_layers": "n_layer"}),
    (("mixtral", "qwen3_moe", "gpt_oss", "minimax"), {"num_experts": "num_local_experts"}),
    (("olmoe", "jamba"), {"num_local_experts": "num_experts"}),
    (("glm4_moe", "deepseek_v3"), {**_EXPERTS_AS, "num_mtp_layers": "num_nextn_predict_layers"}),
    (("deepseek_v32", "mimo_v2_flash"), _EXPERTS_AS),
    (("deepseek_v4",), {**_EXPERTS_AS, "intermediate_size": "moe_intermediate_size"}),
    (
        ("kimi_linear",),
        {
            "max_position_embeddings": "model_max_length",
            "norm_topk_prob": "moe_renormalize",
            "n_group": "num_expert_group",
            "num_local_experts": "num_experts",
            "num_experts_per_tok": "num_experts_per_token",
            "n_shared_experts": "num_shared_experts",
        },
    ),
    (("deepseek_v2",), {"num_experts": "n_routed_experts"}),
    (
        ("longcat_flash",),
        {
            **_EXPERTS_AS,
            "num_experts_per_tok": "moe_topk",
            "intermediate_size": "ffn_hidden_size",
            "moe_intermediate_size": "expert_ffn_hidden_size",
        },
    ),
    (("nemotron_h",), {**_BLOCK_TYPES, **_EXPERTS_AS}),
    (("bamba", "falcon_h1"), _BLOCK_TYPES),
    (("zamba2",), {**_BLOCK_TYPES, "head_dim": "attention_head_dim"}),
    (("granitemoehybrid",), {"layers_block_type": "layer_types"}),
    (("bloom",), {"num_hidden_layers": "n_layer", "num_attention_heads": "n_head"}),
    (("ernie4_5_moe",), {"num_experts": "moe_num_experts", "num_experts_per_tok": "moe_k"}),
    (("hunyuan_v1_moe",), {"num_experts_per_tok": "moe_topk", "num_local_experts": "num_experts"}),
    (("dbrx",), {**_DBRX_NAMES, "max_position_embeddings": "max_seq_len"}),
    (("jetmoe",), {"head_dim": "kv_channels"}),
)
ATTRIBUTE_MAPS: dict[str, dict[str, str]] = {t: aliases for types, aliases in _ALIAS_GROUPS for t in types}


# Names a config class's __post_init__ reads into a field (not in its attribute_map): {name: the field}.
POST_INIT_ALIASES: dict[str, dict[str, str]] = {
    "falcon": {"n_embed": "hidden_size"},
    "bloom": {"n_embed": "hidden_size"},
    "deepseek_v32": {"num_experts": "n_routed_experts"},
    "nemotron_h": {"mamba_n_groups": "n_groups", "mamba_d_conv": "conv_kernel", "mamba_conv_bias": "use_conv_bias"},
}


# Families whose attention reads no window: given a sliding_window, transformers 5.24's cache (DynamicCache)
# still keeps only the last W - 1 tokens of every layer while the attention reads all of them. Not modelled:
# such a config is refused, naming the field; so is an attention_chunk_size (which that cache takes for a
# window where sliding_window is unset) outside Llama 4, the one family that chunks.
WINDOWLESS = frozenset(
    {"llama", "falcon", "gpt2", "olmo2", "phi", "stablelm", "cohere", "gptj", "gpt_neox", "gpt_bigcode", "granite"}
    | {"glm4", "olmoe", "glm4_moe", "granitemoe", "deepseek_v2", "deepseek_v3"}
    | {"gemma", "bloom", "opt", "seed_oss", "apertus"}
    | {"ernie4_5", "ernie4_5_moe", "hunyuan_v1_dense", "hunyuan_v1_moe"}
    | {"dbrx", "jetmoe"}
)


def refuse_unread_window(config: dict[str, Any], model_type: str, path: Path) -> None:
    """One line for a window field a family does not read (see :data:`WINDOWLESS`)."""
    keys = ("sliding_window",) * (model_type in WINDOWLESS) + ("attention_chunk_size",) * (model_type != "llama4_text")
    for key in keys:
        if config.get(key) is not None:
            raise EstimatorError(
                f"{path}: {key} is {str(config[key])[:20]}, but a {model_type} model's attention reads no such window "
                f"(transformers 5.24's cache would keep only the last {key} - 1 tokens of each layer); not "
                f"modelled: remove it or set it to null"
            )


def canonical_names(config: dict[str, Any], model_type: str, path: Path) -> dict[str, Any]:
    """``config`` with each alias of ``model_type``'s config class renamed to the field it stands for, as
    transformers reads it; both names with different values are refused (which one wins is not the JSON's
    to say)."""
    renamed = dict(config)
    aliases = {**ATTRIBUTE_MAPS.get(model_type, {}), **POST_INIT_ALIASES.get(model_type, {})}
    for alias, name in aliases.items():
        if alias not in renamed:
            continue
        value = renamed.pop(alias)
        if name in renamed and renamed[name] != value:
            raise EstimatorError(
                f"{path}: config.json gives both {alias} ({str(value)[:40]}) and {name} ({str(renamed[name])[:40]}), "
                f"which a {model_type} config reads as one field; keep one"
            )
        renamed[name] = value
    return renamed


class Reader:
    """Field access on one config.json: names what is missing, records every default applied.

    Every field the readers use is checked first (:mod:`estimator.families.schema`): a reader never
    computes with a value of the wrong type or out of range.
    """

    def __init__(
        self, config: dict[str, Any], path: Path, model_type: str, fields: dict[str, Any] | None = None
    ) -> None:
        from estimator.families.schema import problem

        self.given = frozenset(config)  # the names as the config.json gives them, aliases not yet renamed
        config = canonical_names(config, model_type, path)
        refuse_unread_window(config, model_type, path)
        if (wrong := problem(config, fields or {})) is not None:
            raise EstimatorError(f"{path}: {wrong}; fix the config.json")
        self.config = config
        self.path = path
        self.model_type = model_type
        self.notes: list[str] = []

    def need(self, *keys: str) -> Any:
        """The first of ``keys`` present and not null (aliases); an error naming the field otherwise."""
        for key in keys:
            if self.config.get(key) is not None:
                return self.config[key]
        raise EstimatorError(
            f"{self.path}: config.json lacks {keys[0]!r}, which a {self.model_type} model needs; "
            f"use the model's complete config.json"
        )

    def get(self, key: str, default: Any, why: str | None = None, *, null_is_default: bool = True) -> Any:
        """The value of ``key``; when absent (or null, unless null means something), ``default``.

        ``why`` is recorded in the notes when the default is applied.
        """
        value = self.config.get(key, _MISSING)
        if value is _MISSING or (value is None and null_is_default):
            if why is not None:
                self.notes.append(f"config.json has no {key}: {why}")
            return default
        return value

    def note(self, text: str) -> None:
        self.notes.append(text)

    def field(self, key: str, defaults: dict[str, Any]) -> Any:
        """``key`` from the config; absent, the family's transformers default (noted) if it has one,
        else an error naming the field."""
        if key in defaults:
            return self.get(key, defaults[key], f"{defaults[key]:,} ({self.model_type} config default)")
        return self.need(key)


def head_dim_or_derived(r: Reader, hidden: Any, heads: Any, default: Any = None) -> Any:
    """``head_dim`` from the config; else the family default, or hidden_size / heads as transformers does."""
    if default is not None:
        return r.get("head_dim", default, f"{default} ({r.model_type} config default)")
    derived = hidden // heads if isinstance(hidden, int) and isinstance(heads, int) and heads > 0 else None
    return r.get("head_dim", derived, "head_dim = hidden_size / num_attention_heads, as transformers does")


def all_sparse_fields(
    r: Reader, defaults: dict[str, Any], experts_key: str, experts: int, top_k: int, kv_default: int | None = None
) -> dict[str, Any]:
    """The spec fields of a decoder whose every layer routes to experts behind Llama-style attention (OLMoE,
    PhiMoE, GraniteMoE): ``defaults`` are the config class's for absent keys, ``experts_key`` names the
    expert count; KV heads default to the query heads, or to ``kv_default`` (a null then meaning as many)."""
    hidden, heads, n = r.need("hidden_size"), r.field("num_attention_heads", defaults), r.need("num_hidden_layers")
    width = r.field("intermediate_size", defaults)
    family = r.model_type
    if kv_default is None:
        kv = r.get("num_key_value_heads", heads, f"as many KV heads as query heads ({family} default)")
    else:
        kv = r.get("num_key_value_heads", kv_default, f"{kv_default} KV heads ({family} config default)",
                   null_is_default=False)  # fmt: skip
    return {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": width,
        "moe_intermediate_size": width,
        "num_attention_heads": heads,
        "num_key_value_heads": heads if kv is None else kv,
        "head_dim": head_dim_or_derived(r, hidden, heads),
        "vocab_size": r.field("vocab_size", defaults),
        "max_position_embeddings": r.field("max_position_embeddings", defaults),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "attention_bias": r.get("attention_bias", False),
        "n_routed_experts": r.get(experts_key, experts, f"{experts} ({family} config default)"),
        "num_experts_per_tok": r.get("num_experts_per_tok", top_k, f"{top_k} ({family} config default)"),
        "mlp_layer_types": ("sparse",) * n if isinstance(n, int) else None,
    }


def attention_config(spec: ModelSpec) -> dict[str, Any]:
    """The config.json fields of a Llama-style decoder's shape (the start of most ``to_config``)."""
    return {
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads,
        "head_dim": spec.head_dim,
        "max_position_embeddings": spec.max_position_embeddings,
    }


def windowed_attention_layout(
    spec: ModelSpec, maps: tuple[Any, ...], norms: tuple[Any, ...], tensors: tuple[Any, ...]
) -> Layout:
    """Decoder layers alike but for their sliding window: one group per window (None: full attention), each
    softmax attention over the spec's heads with the same ``maps`` and ``norms``; ``tensors`` outside them."""
    from estimator.layout import Attention, LayerGroup, Layout
    from estimator.layout.groups import grouped

    def group(window: Any, layers: int) -> LayerGroup:
        mixer = Attention(spec.attention_heads, spec.kv_heads, spec.attention_head_dim, window)
        return LayerGroup(layers, mixer, maps, norms)

    return Layout(grouped(spec.layer_windows(), group), tensors)


def windowed_sparse_layout(
    spec: ModelSpec, attention: tuple[Any, ...], mlps: dict[str, tuple[Any, ...]], norms: tuple[Any, ...]
) -> Layout:
    """Decoder layers that differ in their window and in their MLP (``mlps`` by ``mlp_layer_types``: "dense",
    "sparse"): one group per (window, MLP kind), softmax attention over the spec's heads with ``attention``'s maps
    and ``norms``; the embedding, final norm and head (tied or not) outside them (Mixtral, EXAONE-MoE, AFMoE)."""
    from estimator.layout import Attention, LayerGroup, Layout
    from estimator.layout.groups import embedding_and_final_norm, grouped

    def group(kind: Any, layers: int) -> LayerGroup:
        window, mlp = kind
        mixer = Attention(spec.attention_heads, spec.kv_heads, spec.attention_head_dim, window)
        return LayerGroup(layers, mixer, (*attention, *mlps[mlp]), norms)

    kinds = list(zip(spec.layer_windows(), spec.mlp_layer_types or (), strict=True))
    tensors = embedding_and_final_norm(spec.vocab_size, spec.hidden_size, spec.tie_word_embeddings)
    return Layout(grouped(kinds, group), tensors)


@dataclass(frozen=True, eq=False)  # compared by identity: a record, never a key
class Family:
    """The three faces of one architecture family (see the module docstring), and optionally: the checks
    of the config fields only its reader uses (beside :data:`estimator.families.schema.FIELDS`), and how a
    validation twin of it is shrunk (``twin(spec, generic update) -> update``), and what transformers, peft and
    llama.cpp do with each of its model types (:mod:`estimator.families.conventions`)."""

    model_types: tuple[str, ...]
    read: Callable[[Reader], dict[str, Any]]
    build: Callable[[ModelSpec], Layout]
    to_config: Callable[[ModelSpec], dict[str, Any]]
    fields: dict[str, Callable[[Any], str | None]] = field(default_factory=dict)
    twin: Callable[[ModelSpec, dict[str, Any]], dict[str, Any]] | None = None
    conventions: dict[str, Conventions] = field(default_factory=dict)  # by model type (conventions.py); absent: none


# model_type -> the module of its family: a lookup imports only the module it needs.
MODULE_OF = {
    **dict.fromkeys(("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text", "phi3"), "dense"),
    "falcon": "falcon",
    "gpt2": "gpt2",
    **dict.fromkeys(("olmo2", "olmo3"), "olmo"),
    **{"phi": "phi", "starcoder2": "starcoder2", "smollm3": "smollm3", "exaone4": "exaone4", "stablelm": "stablelm"},
    **dict.fromkeys(("cohere", "cohere2"), "cohere"),
    **{"gptj": "gptj", "gpt_neox": "gpt_neox", "gpt_bigcode": "gpt_bigcode", "granite": "granite", "glm4": "glm4"},
    **dict.fromkeys(("mixtral", "qwen2_moe", "qwen3_moe"), "moe"),
    **{t: t for t in ("gpt_oss", "phimoe", "olmoe", "glm4_moe", "granitemoe")},
    **dict.fromkeys(("ernie4_5", "ernie4_5_moe"), "ernie"),
    **dict.fromkeys(("hunyuan_v1_dense", "hunyuan_v1_moe"), "hunyuan"),
    "granitemoe_swa": "granitemoe_swa",
    "cohere2_moe": "cohere2_moe",
    "exaone_moe": "exaone_moe",
    "afmoe": "afmoe",
    **{t: t for t in ("jamba", "bamba", "granitemoehybrid", "nemotron_h", "falcon_h1", "zamba2")},
    **dict.fromkeys(("deepseek_v2", "deepseek_v3"), "deepseek"),
    **{"llama4_text": "llama4", "gemma3n_text": "gemma3n", "deepseek_v32": "deepseek_v32"},
    **{"qwen3_next": "qwen3_next", "lfm2": "lfm2", "mamba": "mamba", "mamba2": "mamba"},
    **{t: t for t in ("gemma", "bloom", "opt", "seed_oss", "apertus", "granite_swa")},
    **{"vaultgemma": "gemma", "ministral": "ministral", "ministral3": "ministral", "falcon_mamba": "mamba"},
    **dict.fromkeys(("qwen3_5_text", "qwen3_5_moe_text"), "qwen3_5"),
    "gemma4_text": "gemma4",
    "minimax": "minimax",
    "mimo_v2_flash": "mimo_v2_flash",
    "kimi_linear": "kimi_linear",
    "longcat_flash": "longcat_flash",
    "deepseek_v4": "deepseek_v4",
    **{"dbrx": "dbrx", "jetmoe": "jetmoe"},
}


def all_families() -> list[Family]:
    """Every family (imports every family module)."""
    families: list[Family] = []
    for name in dict.fromkeys(MODULE_OF.values()):
        families.extend(importlib.import_module(f"estimator.families.{name}").FAMILIES)
    return families


def family(model_type: str) -> Family:
    """The family that builds ``model_type`` (imports only its module)."""
    if model_type in MODULE_OF:
        module = importlib.import_module(f"estimator.families.{MODULE_OF[model_type]}")
        for candidate in module.FAMILIES:
            if model_type in candidate.model_types:
                return candidate  # type: ignore[no-any-return]
    raise EstimatorError(f"model_type {model_type!r} is not supported yet; supported: {', '.join(supported())}")


def conventions_of(model_type: str) -> Conventions:
    """What transformers, peft and llama.cpp do with ``model_type`` beyond its layout (imports only its family)."""
    return family(model_type).conventions.get(model_type, NONE)


def supported() -> list[str]:
    return list(MODULE_OF)

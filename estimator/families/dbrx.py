"""Databricks DBRX (model type dbrx): fused q/k/v, 16 fine-grained experts as bare tensors, LayerNorms without bias.

What transformers 5.24's ``DbrxForCausalLM`` builds, per block (``transformer.blocks.{i}``):

- ``norm_attn_norm.norm_1`` and ``norm_2``: LayerNorms of d without bias (d weights each);
- attention ``norm_attn_norm.attn``: ``Wqkv`` (d -> d + 2 · K · d_h, no bias) and ``out_proj`` (d -> d, no
  bias); H = ``n_heads`` query heads of d_h = ``d_model`` / H (a ``head_dim`` field is not read by the
  attention), K = ``attn_config.kv_n_heads`` KV heads (1 by default); ``attn_config.clip_qkv`` clamps
  activations and holds nothing (a null one makes transformers 5.24's forward fail: its clamp gets no bound);
  ``attn_config.rope_theta`` must be given (DbrxAttention reads it; the class has no default);
- ``ffn``: the router ``router.layer`` (an ``nn.Linear`` d -> E, no bias) and E = ``ffn_config.moe_num_experts``
  (4 by default) experts of F = ``ffn_config.ffn_hidden_size`` (3,584 by default) as three bare tensors
  ``experts.mlp.w1`` (gate), ``v1`` (up) and ``w2`` (down), each (E · F) × d; top ``ffn_config.moe_top_k``
  (1 by default); ``ffn_act_fn.name`` picks the activation (a parameter-free one: ``prelu`` and ``xielu``,
  whose modules hold weights, are refused); ``moe_jitter_eps``, ``moe_loss_weight`` and
  ``moe_normalize_expert_weights`` shape routing and training, not parameters;
- outside the blocks: ``wte`` (V × d), ``norm_f`` (d) and an untied ``lm_head`` (transformers refuses
  ``tie_word_embeddings`` true for DBRX).

The config names the fields ``d_model``, ``n_heads``, ``n_layers``, ``max_seq_len`` (transformers reads
``hidden_size``, ``num_attention_heads``, ``num_hidden_layers`` and ``max_position_embeddings`` as them), and
``DbrxConfig`` overwrites a top-level ``num_key_value_heads`` with ``attn_config.kv_n_heads``.

peft 0.21 does not convert dbrx (no entry in transformers' ``_MODEL_TO_CONVERSION_PATTERN``), and its
experts were bare tensors before transformers 5 too: all-linear adapts ``Wqkv``, ``out_proj`` and the router
``router.layer``. The per-expert layout is the convention of gate, up and down ``nn.Linear`` maps per expert.

DBRX (databricks/dbrx-base and dbrx-instruct): 40 blocks of 3,259,084,800 (Wqkv 50,331,648, out_proj 37,748,736,
router 98,304, experts 16 · 198,180,864, norms 12,288) + 2 · 100,352 · 6,144 + 6,144 = 131,596,523,520
(Databricks: 132B); active 131,596,523,520 − 40 · 12 · 198,180,864 = 36,469,708,800 (Databricks: 36B).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.families import Family, Reader
from estimator.families.activation import ACTIVATION_PARAMS, whole_heads
from estimator.families.moe import expert_shape
from estimator.families.schema import LAYERS, MAX_CONTEXT, SIZE, Check, count
from estimator.families.unbuildable import refuse_null
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import roles
from estimator.layout.moe import MoE

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

_D_MODEL = 2048  # DbrxConfig's default d_model
_DEFAULTS = {"n_heads": 16, "vocab_size": 32000, "max_seq_len": 2048}  # DbrxConfig's, for absent keys
_SECTIONS: dict[str, dict[str, Any]] = {  # DbrxAttentionConfig's and DbrxFFNConfig's defaults
    "attn_config": {"kv_n_heads": 1, "clip_qkv": None},
    "ffn_config": {"ffn_hidden_size": 3584, "moe_num_experts": 4, "moe_top_k": 1, "ffn_act_fn": {"name": "silu"}},
}


def _number(value: Any) -> str | None:
    return None if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else "a number > 0"


def _section(value: Any) -> str | None:
    return None if isinstance(value, dict) else "an object or null"


FIELDS: dict[str, Check] = {
    "d_model": SIZE,
    "n_heads": SIZE,
    "n_layers": LAYERS,
    "max_seq_len": count(1, MAX_CONTEXT),
    "attn_config": _section,
    "ffn_config": _section,
}
# The fields read inside the two sections, checked as the top-level ones are.
_SECTION_FIELDS: dict[str, Check] = {
    "kv_n_heads": SIZE,
    "clip_qkv": _number,
    "rope_theta": _number,
    "ffn_hidden_size": SIZE,
    "moe_num_experts": SIZE,
    "moe_top_k": SIZE,
    "ffn_act_fn": _section,
}
_NULL_IS_DEFAULT = ("clip_qkv", "ffn_act_fn")


def _sections(r: Reader) -> dict[str, dict[str, Any]]:
    """attn_config's and ffn_config's fields, each checked; absent ones are the sub-config class's defaults
    (noted); a null one is refused where transformers cannot build it (a null clip_qkv is none, a null
    ffn_act_fn silu, as the classes read them)."""
    out: dict[str, dict[str, Any]] = {}
    for section, defaults in _SECTIONS.items():
        given = (r.config.get("attn_config") if section == "attn_config" else r.config.get("ffn_config")) or {}
        for key, check in _SECTION_FIELDS.items():
            value = given.get(key)
            if value is not None and (wrong := check(value)) is not None:
                raise EstimatorError(f"{r.path}: field '{section}.{key}' is {str(value)[:40]}, not {wrong}; fix it")
        values = {}
        for key, default in defaults.items():
            if given.get(key) is not None:
                values[key] = given[key]
                continue
            if key in given and key not in _NULL_IS_DEFAULT:
                raise EstimatorError(
                    f"{r.path}: {section}.{key} is null, which transformers 5.24's dbrx code cannot build; give one"
                )
            values[key] = default
            if default is not None:
                r.note(f"config.json's {section} has no {key}: {default} (Dbrx config default)")
        if section == "attn_config":
            if given.get("rope_theta") is None:
                raise EstimatorError(
                    f"{r.path}: attn_config has no rope_theta, without which transformers 5.24 cannot build a dbrx "
                    "model (DbrxAttention reads it; DBRX gives 500000); add it"
                )
            values["rope_theta"] = given["rope_theta"]
        out[section] = values
    return out


def read(r: Reader) -> dict[str, Any]:
    refuse_null(r, "n_heads", "vocab_size", "max_seq_len")
    hidden, heads, n = r.need("d_model"), r.field("n_heads", _DEFAULTS), r.need("n_layers")
    if "hidden_size" in r.given and "d_model" not in r.given and hidden != _D_MODEL:
        raise EstimatorError(
            f"{r.path}: hidden_size is {hidden}, without d_model: transformers 5.24's DbrxConfig sizes the experts "
            f"and router from d_model ({_D_MODEL:,} by default) before it reads hidden_size as d_model, so it builds "
            "a model that cannot run; give d_model"
        )
    whole_heads(r, hidden, heads)
    head_dim = hidden // heads
    if r.config.get("head_dim") not in (None, head_dim):
        raise EstimatorError(
            f"{r.path}: head_dim is {r.config['head_dim']}, but a dbrx model's attention uses d_model / n_heads "
            f"= {head_dim} (and its RoPE would use head_dim: transformers 5.24 cannot run it); remove head_dim"
        )
    if r.get("tie_word_embeddings", False):
        raise EstimatorError(f"{r.path}: tie_word_embeddings is true, which transformers refuses for dbrx; set false")
    sections = _sections(r)
    attn, ffn = sections["attn_config"], sections["ffn_config"]
    act = ffn["ffn_act_fn"].get("name", "silu")
    if not isinstance(act, str):
        raise EstimatorError(f"{r.path}: ffn_config.ffn_act_fn.name is {str(act)[:40]}, not a string; fix it")
    if act in ACTIVATION_PARAMS:
        raise EstimatorError(
            f"{r.path}: ffn_config.ffn_act_fn.name is {act!r}, whose module holds learned parameters in "
            "transformers 5.24; a dbrx model is not modelled with it: use a parameter-free one (e.g. 'silu')"
        )
    weights = (r.config.get("ffn_config") or {}).get("moe_normalize_expert_weights")
    if isinstance(weights, int) and not isinstance(weights, bool):  # DBRX's published config: 1
        r.note(
            f"ffn_config.moe_normalize_expert_weights is {weights}, an integer transformers 5.24's strict "
            f"DbrxFFNConfig refuses (it loads {float(weights)}); counted as the model it builds with {float(weights)}"
        )
    kv = attn["kv_n_heads"]
    if r.config.get("num_key_value_heads") not in (None, kv):
        r.note(f"num_key_value_heads is replaced by attn_config.kv_n_heads ({kv}), as DbrxConfig does")
    return {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "intermediate_size": ffn["ffn_hidden_size"],
        "moe_intermediate_size": ffn["ffn_hidden_size"],
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "head_dim": head_dim,
        "vocab_size": r.field("vocab_size", _DEFAULTS),
        "max_position_embeddings": r.field("max_seq_len", _DEFAULTS),
        "tie_word_embeddings": False,
        "n_routed_experts": ffn["moe_num_experts"],
        "num_experts_per_tok": ffn["moe_top_k"],
        "mlp_layer_types": ("sparse",) * n,
        "family_fields": (
            ("clip_qkv", attn["clip_qkv"]),
            ("rope_theta", attn["rope_theta"]),
            ("ffn_act_fn", str(act)),
        ),
    }


@dataclass(frozen=True)
class DbrxExperts(MoE):
    """DBRX's experts: ``experts.mlp.w1``, ``v1``, ``w2`` ((E · F) × d each; bare tensors when fused, an
    ``nn.Linear`` per expert by convention otherwise) behind the ``nn.Linear`` router ``router.layer``."""

    def linears(self, fused: bool) -> tuple[LinearMap, ...]:
        d, f, e, module = self.d_model, self.width, self.experts, not fused
        gate, up, down = (f"{self.prefix}.{name}" for name in self.names)
        return (
            LinearMap(self.router, d, e, False, roles("router"), "mlp"),
            LinearMap(gate, d, f, False, roles("gate"), "mlp", e, module=module, expert=True),
            LinearMap(up, d, f, False, roles("up"), "mlp", e, module=module, expert=True),
            LinearMap(down, f, d, False, roles("down"), "mlp", e, module=module, expert=True),
        )


def build(spec: ModelSpec) -> Layout:
    """One group. Per block: d · (d + 2 · K · d_h) + d · d (Wqkv, out_proj) + d · E + E · 3 · d · F + 2 · d."""
    d, h, kv, dh = spec.hidden_size, spec.attention_heads, spec.kv_heads, spec.attention_head_dim
    experts = DbrxExperts(
        **expert_shape(spec),
        prefix="ffn.experts.mlp",
        names=("w1", "v1", "w2"),
        router="ffn.router.layer",
    )
    maps: tuple[LinearMap | MoE, ...] = (
        LinearMap("norm_attn_norm.attn.Wqkv", d, h * dh + 2 * kv * dh, False, roles("q", "k", "v"), "attention"),
        LinearMap("norm_attn_norm.attn.out_proj", h * dh, d, False, roles("o"), "attention"),
        experts,
    )
    norms = tuple(ParamTensor(f"norm_attn_norm.{name}", d, "norm") for name in ("norm_1", "norm_2"))
    tensors = (
        ParamTensor("wte", spec.vocab_size * d, "embedding"),
        ParamTensor("norm_f", d, "norm"),
        ParamTensor("lm_head", spec.vocab_size * d, "lm_head"),
    )
    group = LayerGroup(spec.num_hidden_layers, Attention(h, kv, dh), maps, norms)
    return Layout((group,), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        "d_model": spec.hidden_size,
        "n_heads": spec.num_attention_heads,
        "n_layers": spec.num_hidden_layers,
        "max_seq_len": spec.max_position_embeddings,
        "vocab_size": spec.vocab_size,
        "tie_word_embeddings": False,
        "attn_config": {
            "kv_n_heads": spec.num_key_value_heads,
            "clip_qkv": spec.option("clip_qkv"),
            "rope_theta": spec.option("rope_theta", 500000),
        },
        "ffn_config": {
            "ffn_hidden_size": spec.moe_intermediate_size,
            "moe_num_experts": spec.n_routed_experts,
            "moe_top_k": spec.num_experts_per_tok,
            "ffn_act_fn": {"name": spec.option("ffn_act_fn", "silu")},
        },
    }


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """A validation twin keeps d_model: DBRX's head_dim is d_model / n_heads, so a narrower twin would change it."""
    return {**update, "hidden_size": spec.hidden_size}


FAMILIES = [Family(("dbrx",), read, build, to_config, fields=FIELDS, twin=twin)]

"""The building blocks of a model's layout: linear maps and other parameter tensors.

Family modules (:mod:`estimator.families`) describe each architecture with these; parameter
counts and every adapter size derive from them (:mod:`estimator.architecture`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

Block = Literal["attention", "mlp"]
Group = Literal["embedding", "norm", "lm_head"]


class ExpertLayout(StrEnum):
    """How mixture-of-experts weights are laid out, which decides what LoRA "all-linear" adapts.

    ``per-expert``: each expert's gate, up and down are separate linear maps (the released
    checkpoints, vLLM, transformers < 5); "all-linear" adapts every expert at rank r, and the router
    where it is an ``nn.Linear`` there.
    ``fused``: transformers >= 5 stores each layer's experts as 3-D tensors (gate_up: E × 2F × d,
    down: E × d × F). peft (0.21) turns an all-linear LoRA into LoRAs on those tensors: gate_up at
    rank 2r (gate's and up's r each, as one block), down at rank r, the router weight at rank r,
    for the families whose v4 names it converts (Mixtral, Qwen3-MoE, DeepSeek V2/V3).
    peft moves the names gate_proj, up_proj and down_proj to those tensors, so the dense and shared
    MLPs of the same names (DeepSeek's first layers and shared experts) lose their adapters.
    ``none``: experts and routers left alone (peft's all-linear on Qwen2-MoE under transformers >= 5,
    or any target list without them).
    """

    per_expert = "per-expert"
    fused = "fused"
    none = "none"


# Families whose v4 expert and router names peft (0.21) converts to transformers >= 5's tensors, and
# the module names it moves there (nn.Linear modules of those names are then no longer adapted).
PEFT_CONVERTS = ("mixtral", "qwen3_moe", "deepseek_v2", "deepseek_v3")
PEFT_CONVERTED_NAMES = ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LinearMap:
    """One linear map inside the decoder layers: ``nn.Linear``, GPT-2's ``Conv1D``, or an expert tensor.

    ``name`` is the module path inside a layer as transformers names it (``self_attn.q_proj``),
    ``roles`` the projections it computes ({"q"}, or {"q", "k", "v"} when fused), ``count`` copies
    per layer (experts), ``layers`` how many layers hold it. ``module`` is False for a bare
    parameter (fused expert tensors, routers stored as a weight) that is no ``nn.Linear``;
    ``param_adapted`` marks such a parameter that peft's all-linear still adapts on transformers
    >= 5, at ``rank_factor`` times the rank.
    """

    name: str
    d_in: int
    d_out: int
    bias: bool
    roles: frozenset[str]
    block: Block
    count: int = 1
    layers: int = 1
    module: bool = True
    expert: bool = False
    param_adapted: bool = False
    rank_factor: int = 1

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def copies(self) -> int:
        """Instances in the whole model: copies per layer × layers."""
        return self.count * self.layers

    @property
    def weight_params(self) -> int:
        """d_in · d_out per instance, times instances."""
        return self.d_in * self.d_out * self.copies

    @property
    def bias_params(self) -> int:
        """d_out per instance when the map has a bias."""
        return self.d_out * self.copies if self.bias else 0

    @property
    def params(self) -> int:
        return self.weight_params + self.bias_params

    @property
    def full_rank(self) -> int:
        """The largest rank a factorisation of this map can have: min(d_in, d_out)."""
        return min(self.d_in, self.d_out)


@dataclass(frozen=True)
class ParamTensor:
    """A parameter tensor outside the linear maps: embeddings, norms, the output head."""

    name: str
    numel: int
    group: Group
    copies: int = 1

    @property
    def params(self) -> int:
        return self.numel * self.copies


def roles(*names: str) -> frozenset[str]:
    return frozenset(names)


def attention_maps(
    d: int, q_out: int, kv_out: int, n_layers: int, qkv_bias: bool, o_bias: bool, prefix: str = "self_attn"
) -> list[LinearMap]:
    """Separate q, k, v, o projections (Llama and its descendants)."""
    return [
        LinearMap(f"{prefix}.q_proj", d, q_out, qkv_bias, roles("q"), "attention", layers=n_layers),
        LinearMap(f"{prefix}.k_proj", d, kv_out, qkv_bias, roles("k"), "attention", layers=n_layers),
        LinearMap(f"{prefix}.v_proj", d, kv_out, qkv_bias, roles("v"), "attention", layers=n_layers),
        LinearMap(f"{prefix}.o_proj", q_out, d, o_bias, roles("o"), "attention", layers=n_layers),
    ]


def gated_mlp(
    prefix: str, d: int, f: int, n_layers: int, bias: bool = False, count: int = 1, expert: bool = False
) -> list[LinearMap]:
    """gate, up (d -> f) and down (f -> d) projections, ``count`` copies per layer."""
    return [
        LinearMap(f"{prefix}.{name}", d_in, d_out, bias, roles(role), "mlp", count, n_layers, expert=expert)
        for name, role, d_in, d_out in (
            ("gate_proj", "gate", d, f),
            ("up_proj", "up", d, f),
            ("down_proj", "down", f, d),
        )
    ]


def rms_norms(d: int, n_layers: int, names: tuple[str, ...]) -> list[ParamTensor]:
    """RMSNorm weights (d each) in every layer."""
    return [ParamTensor(name, d, "norm", n_layers) for name in names]


def decoder_tensors(
    spec: ModelSpec, norms: tuple[str, ...], extra: list[ParamTensor] | None = None
) -> list[ParamTensor]:
    """Token embeddings, RMSNorms (d each) in every layer, ``extra`` tensors, the final norm."""
    d, n = spec.hidden_size, spec.num_hidden_layers
    return [
        ParamTensor("embed_tokens", spec.vocab_size * d, "embedding"),
        *rms_norms(d, n, norms),
        *(extra or []),
        ParamTensor("norm", d, "norm"),
    ]


def qk_norms(spec: ModelSpec) -> list[ParamTensor]:
    """Qwen3's and Gemma 3's RMSNorm on each query and key head (head_dim weights each)."""
    return rms_norms(spec.head_dim, spec.num_hidden_layers, ("self_attn.q_norm", "self_attn.k_norm"))

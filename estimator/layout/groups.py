"""A model's layout as data: groups of layers built alike, each with its mixer, linear maps and tensors.

Family modules (:mod:`estimator.families`) build a :class:`Layout` from a spec; parameters, the KV
cache, FLOPs, prefix tuning and every adapter size are folds over it (:mod:`estimator.architecture`,
:mod:`estimator.kv`, :mod:`estimator.cost`, :mod:`estimator.stores`), so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from estimator.layout.mixers import Mixer

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable, Sequence

    from estimator.layout.moe import MoE

Block = Literal["attention", "mlp"]
# "attention": tensors such as gpt-oss's sinks; "recurrent": a recurrent mixer's own (conv, A_log, D, dt_bias)
Group = Literal["embedding", "norm", "lm_head", "attention", "recurrent"]


class ExpertLayout(StrEnum):
    """How mixture-of-experts weights are laid out, which decides what an adapter on them is.

    ``per-expert``: each expert's gate, up and down are separate linear maps (the released
    checkpoints, vLLM, transformers < 5). ``fused``: transformers >= 5's 3-D expert tensors, adapted
    as peft converts them (see :mod:`estimator.stores.peft_rules`). ``none``: the fused tensors,
    with experts and routers left without adapters.
    """

    per_expert = "per-expert"
    fused = "fused"
    none = "none"

    @property
    def fused_weights(self) -> bool:
        """Whether the weights are transformers >= 5's fused tensors (``fused`` and ``none``)."""
        return self is not ExpertLayout.per_expert


@dataclass(frozen=True)
class LinearMap:
    """One linear map inside the decoder layers: ``nn.Linear``, GPT-2's ``Conv1D``, or an expert tensor.

    ``name`` is the module path inside a layer as transformers names it (``self_attn.q_proj``),
    ``roles`` the projections it computes ({"q"}, or {"q", "k", "v"} when fused), ``count`` copies
    per layer (experts), ``layers`` how many layers hold it (set when a layout is flattened).
    ``module`` is False for a bare parameter (fused expert tensors, routers stored as a weight) that
    is no ``nn.Linear``; ``expert`` marks a routed expert's map.
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
    """A parameter tensor outside the linear maps: embeddings, norms, the output head (``copies`` per layer
    inside a group, or in the whole model outside one)."""

    name: str
    numel: int
    group: Group
    copies: int = 1

    @property
    def params(self) -> int:
        return self.numel * self.copies


@dataclass(frozen=True, eq=False)  # compared by identity: a record, never a key
class LayerGroup:
    """``layers`` decoder layers built alike: one mixer, the same maps (in order) and per-layer tensors."""

    layers: int
    mixer: Mixer
    maps: tuple[LinearMap | MoE, ...]
    tensors: tuple[ParamTensor, ...] = ()

    @property
    def moe(self) -> MoE | None:
        return next((m for m in self.maps if not isinstance(m, LinearMap)), None)

    def linears(self, fused: bool = False) -> tuple[LinearMap, ...]:
        """The maps of one layer, routed experts expanded in the per-expert or fused layout."""
        out: list[LinearMap] = []
        for item in self.maps:
            out.extend((item,) if isinstance(item, LinearMap) else item.linears(fused))
        return tuple(out)


@dataclass(frozen=True, eq=False)  # compared by identity: a record, never a key
class Layout:
    """Every parameter of a model: groups of decoder layers and the tensors outside them."""

    groups: tuple[LayerGroup, ...]
    tensors: tuple[ParamTensor, ...]

    @property
    def num_layers(self) -> int:
        return sum(group.layers for group in self.groups)

    def linear_maps(self, fused: bool = False) -> tuple[LinearMap, ...]:
        """Every linear map with ``layers`` set: the same map in several groups is one entry."""
        merged: dict[LinearMap, int] = {}
        for group in self.groups:
            for linear in group.linears(fused):
                merged[linear] = merged.get(linear, 0) + group.layers
        return tuple(replace(linear, layers=layers) for linear, layers in merged.items())

    def other_tensors(self) -> tuple[ParamTensor, ...]:
        """Norms and other tensors of the layers (copies × layers), then the tensors outside them."""
        inside = [replace(t, copies=t.copies * group.layers) for group in self.groups for t in group.tensors]
        return (*inside, *self.tensors)


def grouped(kinds: Sequence[Hashable], make: Callable[[Hashable, int], LayerGroup]) -> tuple[LayerGroup, ...]:
    """One group per distinct kind of layer, in order of first appearance: ``make(kind, layers)``."""
    counts: dict[Hashable, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    return tuple(make(kind, layers) for kind, layers in counts.items())


def roles(*names: str) -> frozenset[str]:
    return frozenset(names)


def attention_maps(
    d: int, q_out: int, kv_out: int, qkv_bias: bool, o_bias: bool, prefix: str = "self_attn"
) -> tuple[LinearMap, ...]:
    """Separate q, k, v, o projections (Llama and its descendants)."""
    return (
        LinearMap(f"{prefix}.q_proj", d, q_out, qkv_bias, roles("q"), "attention"),
        LinearMap(f"{prefix}.k_proj", d, kv_out, qkv_bias, roles("k"), "attention"),
        LinearMap(f"{prefix}.v_proj", d, kv_out, qkv_bias, roles("v"), "attention"),
        LinearMap(f"{prefix}.o_proj", q_out, d, o_bias, roles("o"), "attention"),
    )


def gated_mlp(prefix: str, d: int, f: int, bias: bool = False) -> tuple[LinearMap, ...]:
    """gate, up (d -> f) and down (f -> d) projections."""
    return tuple(
        LinearMap(f"{prefix}.{name}", d_in, d_out, bias, roles(role), "mlp")
        for name, role, d_in, d_out in (
            ("gate_proj", "gate", d, f),
            ("up_proj", "up", d, f),
            ("down_proj", "down", f, d),
        )
    )


def rms_norms(d: int, names: Iterable[str]) -> tuple[ParamTensor, ...]:
    """RMSNorm weights, d each, in every layer of a group."""
    return tuple(ParamTensor(name, d, "norm") for name in names)


def output_head(vocab: int, d: int, tied: bool) -> tuple[ParamTensor, ...]:
    """The output head V × d, or nothing when it is tied to the input embedding (a tied head shares
    the embedding's tensor and is counted once, as transformers' ``parameters()`` does)."""
    return () if tied else (ParamTensor("lm_head", vocab * d, "lm_head"),)


def embedding_and_final_norm(vocab: int, d: int, tied: bool) -> tuple[ParamTensor, ...]:
    """Token embeddings, the final RMSNorm (d weights) and the output head unless tied."""
    return (
        ParamTensor("embed_tokens", vocab * d, "embedding"),
        ParamTensor("norm", d, "norm"),
        *output_head(vocab, d, tied),
    )

"""A model's layout as data: groups of layers built alike, each with its mixer, linear maps and tensors.

Family modules (:mod:`estimator.families`) build a :class:`Layout` from a spec; parameters, the KV
cache, FLOPs, prefix tuning and every adapter size are folds over it (:mod:`estimator.architecture`,
:mod:`estimator.kv`, :mod:`estimator.cost`, :mod:`estimator.stores`), so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, cast

from estimator.layout.maps import Block, ExpertLayout, Group, LinearMap, ParamTensor
from estimator.layout.mixers import Mixer

__all__ = ["Block", "ExpertLayout", "Group", "LayerGroup", "Layout", "LinearMap", "ParamTensor"]  # maps re-exported

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence

    from estimator.layout.moe import MoE


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


def typed_layers(
    kinds: Sequence[tuple[str, str]],
    per_type: Callable[[str], tuple[Mixer, tuple[LinearMap, ...], tuple[ParamTensor, ...]]],
    mlps: Mapping[str, tuple[LinearMap | MoE, ...]],
    norms: tuple[ParamTensor, ...],
) -> tuple[LayerGroup, ...]:
    """Layers that differ by type and by MLP kind: one group per (layer type, MLP kind) in ``kinds``, each the
    type's mixer, maps and tensors (``per_type``), the kind's MLP maps (``mlps``) and the ``norms`` every layer
    has. Qwen3-Next 80B: 36 (linear_attention, sparse) and 12 (full_attention, sparse) layers, 2 groups."""

    def group(kind: Hashable, layers: int) -> LayerGroup:
        layer_type, mlp = cast(tuple[str, str], kind)
        mixer, maps, tensors = per_type(layer_type)
        return LayerGroup(layers, mixer, (*maps, *mlps[mlp]), (*tensors, *norms))

    return grouped(kinds, group)


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

"""The leaves of a layout: linear maps and parameter tensors as data, and how expert weights are laid out.

A :class:`~estimator.layout.groups.LayerGroup` holds these; :mod:`estimator.layout.moe` expands routed
experts into them. This module imports nothing else of the layout, so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Block = Literal["attention", "mlp"]
# "attention": tensors such as gpt-oss's sinks; "recurrent": a recurrent mixer's own (conv, A_log, D, dt_bias)
# "mlp": an MLP's tensors outside its linear maps (Apertus' learned xIELU activation)
Group = Literal["embedding", "norm", "lm_head", "attention", "recurrent", "mlp"]


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

"""Mixers that keep a fixed-size state instead of (or beside) a cache that grows: recurrent layers
(Mamba, Mamba-2, gated DeltaNet, LFM2's short convolutions), layers that run attention and a recurrent
mixer side by side (Falcon-H1), and layers with no token mixer at all (Nemotron-H's MLP layers).

A recurrent layer keeps, per sequence, the last inputs of its causal convolution (C channels, K − 1
columns in serving engines, K in transformers) and its recurrent state (S elements): its bytes do not
grow with the text, so per token of text they fall as 1/T, like an adapter's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Self

from estimator.layout.formats import ConvCache, KVFormat
from estimator.layout.mixers import Attention, Mixer, split
from estimator.units import DType, format_number

FLOAT_DTYPES = (DType.fp32, DType.bf16, DType.fp16)


def activation_dtype(fmt: KVFormat) -> DType:
    """The dtype a layer's activations (and so a convolution state) are held in: the cache's own float
    dtype, or bf16 where the cache is quantised (fp8, int8, int4, int2)."""
    return fmt.dtype if fmt.dtype in FLOAT_DTYPES else DType.bf16


@dataclass(frozen=True)
class RecurrentState(Mixer):
    """A recurrent layer: C convolution channels of kernel K, and a recurrent state of S elements.

    Mamba-1: C = d_inner, S = d_inner · N. Mamba-2: C = d_inner + 2 · G · N, S = H · P · N.
    Gated DeltaNet: C = 2 · H_k · d_k + H_v · d_v, S = H_v · d_k · d_v. Short convolution: C = d, S = 0.
    Fixed bits = C · (K − 1 or K) · b_act + S · b_state.
    """

    label: str
    conv_channels: int
    conv_kernel: int
    state_elements: int
    kind = "recurrent"

    def vectors(self, fmt: KVFormat) -> tuple[tuple[int, int], ...]:
        return ()

    def cap_tokens(self, fmt: KVFormat) -> int | None:
        return 0

    def fixed_bits(self, fmt: KVFormat) -> int:
        conv = self.conv_channels * fmt.conv_columns(self.conv_kernel) * activation_dtype(fmt).bits
        state = self.state_elements * (fmt.state_dtype or activation_dtype(fmt)).bits
        return conv + state

    @property
    def attention_width(self) -> int:
        return 0

    def attended_positions(self, n: int) -> int:
        return 0

    def shard(self, tp: int) -> Self:
        """1/t of the convolution channels and of the state per GPU (split by head; Mamba-2's B/C groups
        assumed to split too). Mamba-2 of 8,192 + 2 · 8 · 128 channels, t = 2: 4,608 channels per GPU."""
        if tp == 1:
            return self
        channels = split(self.conv_channels, tp, f"the {self.label} convolution channels")
        return replace(
            self, conv_channels=channels, state_elements=split(self.state_elements, tp, f"the {self.label} state")
        )

    def describe(self, fmt: KVFormat) -> str:
        """Its convolution and recurrent states and their bytes per sequence, whatever the text's length."""
        act = activation_dtype(fmt)
        state = fmt.state_dtype or act
        cols = fmt.conv_columns(self.conv_kernel)
        rule = "K − 1, as engines" if fmt.conv is ConvCache.kernel_minus_one else "K, as transformers"
        parts = [f"a convolution state of {self.conv_channels:,} channels × {cols} inputs ({rule}) in {act.value}"]
        parts = parts if self.conv_channels else []  # MiniMax's lightning attention keeps no convolution
        if self.state_elements:
            parts.append(f"a recurrent state of {self.state_elements:,} elements in {state.value}")
        size = format_number(self.fixed_bits(fmt) / 8)
        return f"{self.label}: {' and '.join(parts)}, {size} bytes per sequence, whatever its length"


@dataclass(frozen=True)
class Parallel(Mixer):
    """Mixers side by side in one layer (Falcon-H1: attention and Mamba-2; Zamba2's hybrid layers): the
    cache of the one that grows, and the fixed state of every one."""

    parts: tuple[Mixer, ...]
    kind = "parallel"

    def vectors(self, fmt: KVFormat) -> tuple[tuple[int, int], ...]:
        return tuple(v for part in self.parts for v in part.vectors(fmt))

    def _growing(self, fmt: KVFormat) -> Mixer | None:
        return next((part for part in self.parts if part.vectors(fmt)), None)

    def cap_tokens(self, fmt: KVFormat) -> int | None:
        growing = self._growing(fmt)
        return 0 if growing is None else growing.cap_tokens(fmt)

    def fixed_bits(self, fmt: KVFormat) -> int:
        return sum(part.fixed_bits(fmt) for part in self.parts)

    @property
    def attention_width(self) -> int:
        return sum(part.attention_width for part in self.parts)

    @property
    def window(self) -> int | None:
        return next((part.window for part in self.parts if part.window is not None), None)

    def attended_positions(self, n: int) -> int:
        return max(part.attended_positions(n) for part in self.parts)

    def attention_flops(self, n: int, fmt: KVFormat) -> int:
        return sum(part.attention_flops(n, fmt) for part in self.parts)

    def shard(self, tp: int) -> Self:
        """Each part split as its own kind splits."""
        return replace(self, parts=tuple(part.shard(tp) for part in self.parts))

    def describe(self, fmt: KVFormat) -> str:
        return " and ".join(part.describe(fmt) for part in self.parts)

    def per_head_norms(self, name: str, width: int) -> int:
        """The first part's answer that is not 0 (its activations are refused all the same)."""
        return next((n for part in self.parts if (n := part.per_head_norms(name, width))), 0)

    @property
    def rope_head_dim(self) -> int:
        """The rotary width of its attention part (Falcon-H1: 128)."""
        return next((part.rope_head_dim for part in self.parts if part.rope_head_dim), 0)

    @property
    def cached_attention(self) -> Attention | None:
        """The part that caches keys and values (Falcon-H1: its attention)."""
        return next((a for part in self.parts if (a := part.cached_attention) is not None), None)


@dataclass(frozen=True)
class NoMixer(Mixer):
    """A layer that mixes no tokens (an MLP or mixture of experts alone): it holds nothing."""

    kind = "none"

    def vectors(self, fmt: KVFormat) -> tuple[tuple[int, int], ...]:
        return ()

    def cap_tokens(self, fmt: KVFormat) -> int | None:
        return 0

    @property
    def attention_width(self) -> int:
        return 0

    def attended_positions(self, n: int) -> int:
        return 0

    def shard(self, tp: int) -> Self:
        """Nothing held, nothing to split."""
        return self

    def describe(self, fmt: KVFormat) -> str:
        return "no token mixing (MLP only): nothing held"

    def saved_bytes_per_token(self) -> int:
        """No token mixer, no kernel: nothing saved beyond the layer's norms and maps (0)."""
        return 0

    def saved_bytes_measured(self) -> bool:
        """Nothing of its own to measure: the layer's figure is its norms' and maps' alone."""
        return True

"""How a cache stores what it holds: dtype, quantisation groups, the MLA form, the window convention.

Quantised caches store b bits per element plus, per group of G elements of a vector, an fp16 scale
and optionally an fp16 zero point: b + (16 + 16) / G bits per element.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from estimator.units import DType

SCALE_BITS = 16  # an fp16 scale (and, if used, an fp16 zero point) per quantisation group
INTEGER_DTYPES = (DType.int8, DType.int4, DType.int2)


class WindowCache(StrEnum):
    """How many tokens a full sliding-window layer keeps between steps.

    ``w``: the whole window, a ring buffer of w tokens (Mistral's reference code, vLLM). The default.
    ``w-1``: w - 1 tokens; the next token makes w (transformers' ``DynamicSlidingWindowLayer``).
    """

    window = "w"
    window_minus_one = "w-1"


class MlaCache(StrEnum):
    """What a multi-head latent attention cache holds per token and layer.

    ``latent``: the compressed KV vector and the shared RoPE key, kv_lora_rank + qk_rope_head_dim
    elements (DeepSeek's paper, vLLM, SGLang, transformers >= 5). The default.
    ``expanded``: per-head keys (qk_nope + qk_rope) and values (v_head_dim), H of each, as a naive
    implementation and transformers 4.x keep.
    """

    latent = "latent"
    expanded = "expanded"


class ConvCache(StrEnum):
    """How many inputs a causal convolution's state keeps between steps (Mamba, gated DeltaNet, LFM2).

    ``K-1``: the last K − 1 inputs, all the next step needs (vLLM, SGLang, llama.cpp). The default.
    ``K``: K columns, as transformers' cache holds them.
    """

    kernel_minus_one = "K-1"
    kernel = "K"


@dataclass(frozen=True)
class KVFormat:
    """How the cache stores what it holds: dtype, quantisation groups, MLA form, window convention, and
    for recurrent layers the convolution columns and the recurrent state's dtype."""

    dtype: DType = DType.bf16
    group_size: int | None = 64  # elements per scale for int8/int4/int2; None = one scale per tensor
    zero_point: bool = True
    mla: MlaCache = MlaCache.latent
    window: WindowCache = WindowCache.window
    conv: ConvCache = ConvCache.kernel_minus_one
    state_dtype: DType | None = None  # the recurrent state's dtype; None: the model's (engines' default)

    def conv_columns(self, kernel: int) -> int:
        """Inputs a convolution state of kernel K keeps: K − 1, or K (see :class:`ConvCache`)."""
        return kernel - 1 if self.conv is ConvCache.kernel_minus_one else kernel

    @property
    def quantised(self) -> bool:
        return self.dtype in INTEGER_DTYPES and self.group_size is not None

    def vector_bits(self, length: int) -> int:
        """Bits of one cached vector of ``length`` elements: length · b + ⌈length / G⌉ · (16 [+ 16])."""
        bits = length * self.dtype.bits
        if self.quantised and self.group_size is not None:
            groups = -(-length // self.group_size)
            bits += groups * SCALE_BITS * (2 if self.zero_point else 1)
        return bits

    def describe(self) -> str:
        """``bf16``, or ``int4, groups of 64 with fp16 scale and zero point`` for quantised caches."""
        if not self.quantised:
            return self.dtype.value
        extra = "fp16 scale and zero point" if self.zero_point else "fp16 scale"
        return f"{self.dtype.value}, groups of {self.group_size} with {extra}"


def as_format(kv: KVFormat | DType) -> KVFormat:
    return kv if isinstance(kv, KVFormat) else KVFormat(kv)


def window_tokens(window: int, policy: WindowCache = WindowCache.window) -> int:
    """The most tokens a full sliding-window layer keeps: w, or w - 1 (see :class:`WindowCache`)."""
    return window if policy is WindowCache.window else window - 1

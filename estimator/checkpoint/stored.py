"""What a checkpoint stores, from its tensor table: parameters, bytes per dtype, the quantisation it holds.

A quantised checkpoint keeps companion tensors beside its packed weights; they are bytes, not parameters:
- fp8: ``weight_scale_inv`` (DeepSeek-V3: fp32 per 128 × 128 block) or ``weight_scale``, ``input_scale``;
- GPTQ / AWQ: ``qweight`` (int32, 32 / b values each), ``qzeros``, ``scales`` and GPTQ's ``g_idx``;
- bitsandbytes 4-bit: ``absmax``, ``quant_map``, ``nested_absmax``, ``nested_quant_map`` and the JSON
  ``quant_state``; 8-bit: ``SCB`` and ``weight_format``.
A packed weight counts the parameters it holds: a qweight of n int32 holds n · 32 / b; a 4-bit
bitsandbytes weight of n bytes holds 2n (its packed size; an odd count shows one more).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from estimator.checkpoint.safetensors_files import TensorInfo

COMPANIONS = {  # name suffix -> what the companion tensor is
    ".weight_scale_inv": "fp8 block scales",
    ".weight_scale": "fp8 scales",
    ".input_scale": "fp8 activation scales",
    ".qzeros": "packed zero points",
    ".scales": "group scales",
    ".g_idx": "GPTQ group index",
    ".absmax": "4-bit absmax",
    ".quant_map": "4-bit code",
    ".nested_absmax": "double-quantised absmax",
    ".nested_quant_map": "double-quantisation code",
    ".SCB": "int8 row scales",
    ".weight_format": "int8 layout flag",
}


def companion(name: str) -> str | None:
    """What a quantisation companion tensor is, or None for a weight."""
    if ".quant_state." in name:
        return "4-bit quant state"
    return next((what for suffix, what in COMPANIONS.items() if name.endswith(suffix)), None)


@dataclass(frozen=True)
class Stored:
    """A checkpoint's tensors summed: parameters (packed weights counted by what they hold), bytes per dtype,
    the companions' bytes, and the quantisation found."""

    tensors: tuple[TensorInfo, ...]
    held: tuple[int, ...]  # parameters each tensor holds (0 for a companion)
    bytes_by_dtype: dict[str, int]
    companion_bytes: int
    quantisation: tuple[str, ...] = field(default=())

    @property
    def params(self) -> int:
        return sum(self.held)

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_by_dtype.values())


def packed_bits(config: dict[str, Any] | None) -> int:
    """Bits per value of GPTQ/AWQ weights: ``quantization_config.bits`` (4 if unstated)."""
    quant = (config or {}).get("quantization_config") or {}
    bits = quant.get("bits", quant.get("w_bit", 4)) if isinstance(quant, dict) else 4
    return bits if isinstance(bits, int) and bits in (2, 3, 4, 8) else 4


def quantisation_words(tensors: tuple[TensorInfo, ...], names: set[str], config: dict[str, Any] | None) -> list[str]:
    """The quantisation formats the tensors show, in words."""
    words = []
    fp8 = [t for t in tensors if t.dtype.startswith("F8_")]
    if fp8:
        blocks = [t for t in tensors if t.name.endswith(".weight_scale_inv")]
        kind = "with fp32 scales per block (weight_scale_inv)" if blocks else "with per-tensor scales"
        quant = (config or {}).get("quantization_config") or {}
        size = quant.get("weight_block_size") if isinstance(quant, dict) else None
        if blocks and isinstance(size, list) and len(size) == 2:
            kind = f"with fp32 scales per {size[0]} × {size[1]} block (weight_scale_inv)"
        words.append(f"fp8 ({fp8[0].dtype}) on {len(fp8):,} weights {kind}")
    packed = [t for t in tensors if t.name.endswith(".qweight")]
    if packed:
        gptq = any(n.endswith(".g_idx") for n in names)
        words.append(f"{'GPTQ' if gptq else 'AWQ'} int{packed_bits(config)} on {len(packed):,} weights (packed int32 "
                     f"values and zero points, fp16 group scales{', g_idx' if gptq else ''})")  # fmt: skip
    four = [t for t in tensors if ".quant_state.bitsandbytes__" in t.name]
    if four:
        kind = four[0].name.rsplit("__", 1)[-1]
        nested = any(n.endswith(".nested_absmax") for n in names)
        words.append(f"bitsandbytes {kind} on {len(four):,} weights" + (" with double quantisation" if nested else ""))
    if any(t.name.endswith(".SCB") for t in tensors):
        words.append("bitsandbytes int8 (row-wise, SCB scales)")
    return words


def summarise(tensors: list[TensorInfo], config: dict[str, Any] | None = None) -> Stored:
    """Parameters, bytes per dtype and the quantisation of a checkpoint's tensors."""
    names = {t.name for t in tensors}
    four_bit = {n.split(".quant_state.", 1)[0] for n in names if ".quant_state." in n}  # weights with a quant state
    pack = 32 // packed_bits(config)
    held, extra = [], 0
    by_dtype: Counter[str] = Counter()
    for t in tensors:
        by_dtype[t.dtype] += t.nbytes
        if companion(t.name) is not None:
            extra += t.nbytes
            held.append(0)
        elif t.name.endswith(".qweight"):
            held.append(t.numel * pack)
        elif t.dtype == "U8" and t.name in four_bit:
            held.append(2 * t.numel)
        else:
            held.append(t.numel)
    frozen = tuple(tensors)
    return Stored(frozen, tuple(held), dict(by_dtype), extra, tuple(quantisation_words(frozen, names, config)))

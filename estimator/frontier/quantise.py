"""Quantising and coding the cache: NVFP4, TurboQuant, CommVQ, KVTC (fewer bits per cached element).

Worked numbers for Llama 3.1 8B (32 layers, 8 KV heads, head_dim 128; bf16 cache 131,072 bytes per token):
NVFP4 36,864 (+ 256 fixed); TurboQuant 3.5 bits 28,672; CommVQ 1 bit 8,192; KVTC 20× 6,553.6.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from estimator.frontier.base import KVMethod, bits_of_elements, number
from estimator.layout.mixers import KV_TENSORS, Mixer

if TYPE_CHECKING:
    from estimator.layout.formats import KVFormat
    from estimator.query import Query

NVFP4_BLOCK = 16  # elements per FP8 (E4M3) block scale
NVFP4_ELEMENT_BITS = 4  # E2M1
FP8_SCALE_BITS = 8
FP32_BITS = 32  # NVFP4's second-level per-tensor scale


@dataclass(frozen=True)
class NVFP4(KVMethod):
    """NVFP4: 4-bit E2M1 values, one FP8 E4M3 scale per block of 16, one FP32 scale per tensor.

    Per vector of n elements: 4 · n + 8 · ⌈n / 16⌉ bits (4.5 bits per element for head_dim 128);
    fixed: one FP32 scale per cached tensor (keys, values) per layer.
    Llama 3.1 8B: 2 · 32 · 8 · 128 · 4.5 / 8 = 36,864 bytes per token (FP8: 65,536; bf16: 131,072) + 256 bytes.
    NVIDIA's "50% of FP8" counts the 4-bit values alone; with the block scales the cache is 9/16 of FP8.
    """

    name = "nvfp4"
    kind = "quantisation"
    paper = (
        "NVIDIA (Alvarez, 'Optimizing Inference for Long Context and Large Batch Sizes with NVFP4 KV Cache', "
        "NVIDIA Technical Blog, 2025-12-08, https://developer.nvidia.com/blog/?p=109878): less than 1% accuracy "
        "loss against a BF16/FP16 cache on code-generation, knowledge and long-context benchmarks; its "
        "'50% of FP8' counts the 4-bit values, not the E4M3 block scales"
    )
    costs = "post-training calibration (TensorRT Model Optimizer); dequantised to FP8 before attention on Blackwell"

    def layer_bits(self, mixer: Mixer, fmt: KVFormat) -> Fraction:
        blocks = sum(count * -(-length // NVFP4_BLOCK) for count, length in mixer.vectors(fmt))
        return bits_of_elements(mixer, fmt, Fraction(NVFP4_ELEMENT_BITS)) + blocks * FP8_SCALE_BITS

    def fixed_bits(self, q: Query) -> int:
        """One FP32 scale per cached tensor per layer: keys and values for attention (Llama 3.1 8B: 64 · 32)."""
        from estimator.architecture import layout_of

        tensors = 0
        for group in layout_of(q.spec).groups:
            vectors = group.mixer.vectors(q.kv)
            tensors += group.layers * (KV_TENSORS if group.mixer.cached_attention else len(vectors))
        return tensors * FP32_BITS

    def label(self) -> str:
        return "NVFP4 cache (E2M1 + E4M3 per 16)"


@dataclass(frozen=True)
class TurboQuant(KVMethod):
    """TurboQuant: b bits per channel (coordinate) of each cached vector, as the paper counts its rate.

    Llama 3.1 8B, b = 3.5: 65,536 elements · 3.5 / 8 = 28,672 bytes per token.
    """

    bits: Fraction = Fraction(7, 2)
    name = "turboquant"
    kind = "quantisation"
    paper = (
        "Zandieh et al., 'TurboQuant: Online Vector Quantization with Near-optimal Distortion Rate', "
        "arXiv 2504.19874 (ICLR 2026): quality-neutral at 3.5 bits per channel and marginal degradation at 2.5 bits "
        "on the paper's long-context runs (LongBench, needle-in-a-haystack; Llama 3.1 8B Instruct); within ~2.7x "
        "of the rate-distortion bound. Bytes here are the paper's bits per channel; any per-vector norm is not counted"
    )
    costs = "no training or calibration (a random rotation and a fixed scalar codebook); a decoder in attention"

    def layer_bits(self, mixer: Mixer, fmt: KVFormat) -> Fraction:
        return bits_of_elements(mixer, fmt, self.bits)

    def label(self) -> str:
        return f"TurboQuant cache ({number(self.bits)} bits per channel)"


@dataclass(frozen=True)
class CommVQ(KVMethod):
    """CommVQ: additive vector quantisation of each key and value vector at b bits per element (1 or 2).

    Llama 3.1 8B, 1 bit: 65,536 / 8 = 8,192 bytes per token; at 131,072 tokens 1,073,741,824 bytes.
    The learned codebooks are weights of the model (per layer), not per sequence: not counted.
    """

    bits: int = 2
    name = "commvq"
    kind = "quantisation"
    paper = (
        "Li et al., 'CommVQ: Commutative Vector Quantization for KV Cache Compression', arXiv 2506.18879 (ICML 2025): "
        "2 bits cut an FP16 cache by 87.5% while beating other quantisers on long-context benchmarks and GSM8K; "
        "1 bit with small accuracy loss, Llama 3.1 8B at 128K context on one RTX 4090 (24 GB)"
    )
    costs = "codebooks and a light encoder trained per model (EM); codebooks not counted here (model weights)"

    def layer_bits(self, mixer: Mixer, fmt: KVFormat) -> Fraction:
        return bits_of_elements(mixer, fmt, Fraction(self.bits))

    def label(self) -> str:
        return f"CommVQ cache ({self.bits} bit{'s' if self.bits != 1 else ''} per element)"


@dataclass(frozen=True)
class KVTC(KVMethod):
    """KVTC: the plain cache divided by the compression ratio the paper reports (an entropy coder has no fixed
    bits per element, so the bytes are baseline / ratio). Llama 3.1 8B bf16, 20×: 131,072 / 20 = 6,553.6."""

    ratio: Fraction = Fraction(20)
    name = "kvtc"
    kind = "quantisation"
    paper = (
        "Staniszewski and Łańcucki, 'KV Cache Transform Coding for Compact Storage in LLM Inference', arXiv "
        "2511.01815 (ICLR 2026): up to 20x compression keeping reasoning and long-context accuracy (Llama 3, "
        "Mistral NeMo, R1-Qwen 2.5; AIME25, GSM8K, LongBench, RULER, ...), 40x or more for some uses. The ratio is "
        "the paper's, applied to this cache; its PCA bases are not counted"
    )
    costs = "a brief calibration (PCA bases per model); entropy decoding before reuse; leaves first and last tokens"

    def layer_bits(self, mixer: Mixer, fmt: KVFormat) -> Fraction:
        return Fraction(mixer.bits_per_token(fmt)) / self.ratio

    def label(self) -> str:
        return f"KVTC cache (÷{number(self.ratio)}, a ratio the paper reports)"

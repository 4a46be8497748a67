"""Published ways to shrink the in-context cache, each a small frozen value: what one layer keeps per held
token, how many tokens it keeps, and what it holds whatever the text's length.

Every method is one fold over the model's own layout (as :mod:`estimator.kv`), so windows, latent
attention and recurrent states stay exact:

    bits(T) = Σ_g |g| · (b'_g · h'_g(T) + s_g) + F,    bytes(T) = ⌈bits(T) / 8⌉

where b'_g is the method's bits per held token of one layer of group g, h'_g(T) the tokens that layer
keeps (min(T, w) under a window of w; an eviction keeps ⌈f · min(T, w)⌉ of them), s_g the group's fixed
state (recurrent and convolution states, kept as the plain cache keeps them) and F the method's own fixed
bits (NVFP4's per-tensor scales, a cartridge's trained cache). The bytes are computed; the quality each
paper states is cited in :attr:`KVMethod.paper`, never computed.

Worked numbers for Llama 3.1 8B (32 layers, 8 KV heads, head_dim 128; bf16 cache 131,072 bytes per token):
NVFP4 36,864; TurboQuant 3.5 bits 28,672; CommVQ 1 bit 8,192; KVTC 20× 6,553.6; MHA2MLA d_kv 64 20,480;
TransMLA 512 + 64 36,864; KVzip keep 0.3 of the tokens 39,321.6 (at 100k tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from fractions import Fraction
from typing import TYPE_CHECKING, ClassVar

from estimator.errors import EstimatorError
from estimator.layout.mixers import KV_TENSORS, Attention, Mixer
from estimator.layout.recurrent import Parallel

if TYPE_CHECKING:
    from estimator.layout.formats import KVFormat
    from estimator.query import Query

NVFP4_BLOCK = 16  # elements per FP8 (E4M3) block scale
NVFP4_ELEMENT_BITS = 4  # E2M1
FP8_SCALE_BITS = 8
FP32_BITS = 32  # NVFP4's second-level per-tensor scale


def attention_of(mixer: Mixer) -> Attention | None:
    """The softmax attention a layer caches keys and values for (itself, or a part of a parallel layer)."""
    if isinstance(mixer, Attention):
        return mixer if mixer.stores_kv else None
    if isinstance(mixer, Parallel):
        return next((p for p in mixer.parts if isinstance(p, Attention) and p.stores_kv), None)
    return None


@dataclass(frozen=True)
class KVMethod:
    """One way to hold the text in context for less: subclasses set ``name``, ``kind``, ``paper``, ``costs``."""

    name: ClassVar[str]
    kind: ClassVar[str]  # quantisation, conversion, eviction, trained cache
    paper: ClassVar[str]  # the quality the paper states, with source, model, benchmark, conditions
    costs: ClassVar[str]  # what it costs besides bytes

    def layer_bits(self, mixer: Mixer, fmt: KVFormat) -> Fraction:
        """Bits one layer keeps per held token (default: the plain cache's, in the query's format)."""
        return Fraction(mixer.bits_per_token(fmt))

    def kept_tokens(self, mixer: Mixer, tokens: int, fmt: KVFormat) -> int:
        """Tokens one layer keeps after T tokens (default: what the plain cache holds, T or min(T, w))."""
        return mixer.held_tokens(tokens, fmt)

    def fixed_bits(self, q: Query) -> int:
        """Bits of the method's own that do not grow with the text (none by default)."""
        return 0

    def check(self, q: Query) -> None:
        """Refuse a model the method cannot apply to, in one line."""

    @property
    def text(self) -> str:
        """The method as ``--kv-method`` spells it: ``turboquant:bits=3.5``."""
        values = ";".join(f"{f.name}={_number(getattr(self, f.name))}" for f in fields(self))
        return f"{self.name}:{values}" if values else self.name

    def label(self) -> str:
        raise NotImplementedError


def _bits_of_elements(mixer: Mixer, fmt: KVFormat, bits: Fraction) -> Fraction:
    """Σ count · length · b over the vectors a layer caches per token (the plain cache's vectors)."""
    return sum((count * length * bits for count, length in mixer.vectors(fmt)), Fraction(0))


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
        return _bits_of_elements(mixer, fmt, Fraction(NVFP4_ELEMENT_BITS)) + blocks * FP8_SCALE_BITS

    def fixed_bits(self, q: Query) -> int:
        """One FP32 scale per cached tensor per layer: keys and values for attention (Llama 3.1 8B: 64 · 32)."""
        from estimator.architecture import layout_of

        tensors = 0
        for group in layout_of(q.spec).groups:
            vectors = group.mixer.vectors(q.kv)
            tensors += group.layers * (KV_TENSORS if attention_of(group.mixer) else len(vectors))
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
        return _bits_of_elements(mixer, fmt, self.bits)

    def label(self) -> str:
        return f"TurboQuant cache ({_number(self.bits)} bits per channel)"


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
        return _bits_of_elements(mixer, fmt, Fraction(self.bits))

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
        return f"KVTC cache ({_number(self.ratio)}x the paper's ratio)"


@dataclass(frozen=True)
class MHA2MLA(KVMethod):
    """MHA2MLA: each KV head keeps 2·r partial-RoPE key dims and a d_kv latent of its nope key and value
    (joint SVD): per layer K · (2 r + d_kv) elements, in the query's cache format.

    Llama 2 7B, r = 8, d_kv = 64: 32 · (16 + 64) = 2,560 of 8,192 elements per layer, −68.75%; in int4
    against FP16, 2,560 · 4 / (8,192 · 16) = 7.8125%: the paper's −92.19%.
    """

    rank: int = 64
    rope: int = 8
    name = "mha2mla"
    kind = "conversion"
    paper = (
        "Ji et al., 'Towards Economical Inference: Enabling DeepSeek's Multi-Head Latent Attention in Any "
        "Transformer-based LLMs', arXiv 2502.14837 (ACL 2025): Llama 2 7B's cache -92.19% (d_kv 64 with an int4 "
        "cache) at a 0.5-1% LongBench drop"
    )
    costs = "fine-tuning on 0.3-1% of the pretraining tokens to recover; new k/v projections (SVD)"

    def check(self, q: Query) -> None:
        _convertible(q, self.name)
        for attn in _attentions(q):
            if 2 * self.rope > attn.head_dim or self.rank > 2 * attn.head_dim - 2 * self.rope:
                raise EstimatorError(
                    f"mha2mla:rank={self.rank};rope={self.rope} does not fit head_dim {attn.head_dim}; "
                    f"give rope ≤ {attn.head_dim // 2} and rank ≤ 2 · head_dim − 2 · rope"
                )

    def layer_bits(self, mixer: Mixer, fmt: KVFormat) -> Fraction:
        attn = attention_of(mixer)
        if attn is None:
            return Fraction(mixer.bits_per_token(fmt))
        return Fraction(attn.kv_heads * (fmt.vector_bits(2 * self.rope) + fmt.vector_bits(self.rank)))

    def label(self) -> str:
        return f"MHA2MLA cache (d_kv {self.rank}, {self.rope} RoPE freqs)"


@dataclass(frozen=True)
class TransMLA(KVMethod):
    """TransMLA: GQA/MHA converted to DeepSeek's latent form: kv_lora_rank + qk_rope_head_dim per layer.

    Llama 2 7B, 512 + 64 = 576 of 8,192 elements per layer: −92.97% (the paper's "93%");
    Llama 3.1 8B: 576 of 2,048: 36,864 bytes per token in bf16.
    """

    rank: int = 512
    rope: int = 64
    name = "transmla"
    kind = "conversion"
    paper = (
        "Meng et al., 'TransMLA: Multi-Head Latent Attention Is All You Need', arXiv 2502.07864 (NeurIPS 2025): "
        "93% of Llama 2 7B's cache removed, 10.6x faster at 8K context, comparable benchmark scores after 6B tokens "
        "of fine-tuning"
    )
    costs = "fine-tuning (6B tokens in the paper) after the conversion; runs on DeepSeek's MLA kernels"

    def check(self, q: Query) -> None:
        _convertible(q, self.name)
        for attn in _attentions(q):
            if self.rope > attn.head_dim or self.rank > 2 * attn.kv_heads * attn.head_dim:
                raise EstimatorError(
                    f"transmla:rank={self.rank};rope={self.rope} exceeds the cache it converts "
                    f"({attn.kv_heads} KV heads of {attn.head_dim}); give a smaller rank or rope"
                )

    def layer_bits(self, mixer: Mixer, fmt: KVFormat) -> Fraction:
        if attention_of(mixer) is None:
            return Fraction(mixer.bits_per_token(fmt))
        return Fraction(fmt.vector_bits(self.rank) + fmt.vector_bits(self.rope))

    def label(self) -> str:
        return f"TransMLA cache (latent {self.rank} + RoPE {self.rope})"


@dataclass(frozen=True)
class _Eviction(KVMethod):
    """Keeps a fraction f of the tokens each layer holds: ⌈f · min(T, w)⌉ on a window layer of w (a window
    already holds at most w; eviction keeps f of what it holds), ⌈f · T⌉ elsewhere; states are untouched.
    Llama 3.1 8B, f = 0.3, T = 100,000: 30,000 tokens · 131,072 = 3,932,160,000 bytes."""

    kind = "eviction"

    @property
    def kept_fraction(self) -> Fraction:
        raise NotImplementedError

    def kept_tokens(self, mixer: Mixer, tokens: int, fmt: KVFormat) -> int:
        held, f = mixer.held_tokens(tokens, fmt), self.kept_fraction
        return -(-held * f.numerator // f.denominator)


@dataclass(frozen=True)
class KVzip(_Eviction):
    keep: Fraction = Fraction(3, 10)
    name = "kvzip"
    paper = (
        "Kim et al., 'KVzip: Query-Agnostic KV Cache Compression with Context Reconstruction', arXiv 2505.23416 "
        "(NeurIPS 2025): a 3-4x smaller cache with negligible loss on QA, retrieval, reasoning and code (Llama 3.1, "
        "Qwen 2.5, Gemma 3; contexts up to 170K); query-agnostic, so the pruned cache serves every later query "
        "and prefix caching keeps working"
    )
    costs = "no training; scoring the cache by reconstructing the context (an extra forward pass over it)"

    @property
    def kept_fraction(self) -> Fraction:
        return self.keep

    def label(self) -> str:
        return f"KVzip cache (keeps {_number(self.keep)} of the tokens)"


@dataclass(frozen=True)
class KVzap(KVzip):
    keep: Fraction = Fraction(3, 10)
    name = "kvzap"
    paper = (
        "Jegou and Jeblick, 'KVzap: Fast, Adaptive, and Faithful KV Cache Pruning', arXiv 2601.07891 (NVIDIA "
        "kvpress): 2-4x compression with negligible loss (Qwen3 8B, Llama 3.1 8B Instruct, Qwen3 32B; long-context "
        "and reasoning tasks); its kept fraction is adaptive (a score threshold): give the fraction to size"
    )
    costs = "a small trained scorer (linear or MLP on hidden states); works in prefill and decoding"

    def label(self) -> str:
        return f"KVzap cache (keeps {_number(self.keep)} of the tokens)"


@dataclass(frozen=True)
class DMS(_Eviction):
    ratio: Fraction = Fraction(8)
    name = "dms"
    paper = (
        "Łańcucki et al., 'Inference-Time Hyper-Scaling with KV Cache Compression', arXiv 2506.05345 (NVIDIA): "
        "Dynamic Memory Sparsification reaches 8x compression after 1K training steps, keeping accuracy on "
        "reasoning benchmarks (Qwen-R1 models; AIME 24, GPQA, LiveCodeBench)"
    )
    costs = "about 1K steps of training per model to learn the eviction; delayed eviction (a short sliding window)"

    @property
    def kept_fraction(self) -> Fraction:
        return 1 / self.ratio

    def label(self) -> str:
        return f"DMS cache ({_number(self.ratio)}x fewer tokens)"


@dataclass(frozen=True)
class RKV(KVzip):
    keep: Fraction = Fraction(1, 10)
    name = "rkv"
    paper = (
        "Cai et al., 'R-KV: Redundancy-aware KV Cache Compression for Reasoning Models', arXiv 2505.24133: about "
        "100% of the full cache's accuracy with 10% of it on reasoning traces (DeepSeek-R1-Distill Llama 8B and "
        "Qwen 14B; math benchmarks); it compresses the decoded trace, not the given text"
    )
    costs = "no training; scoring importance and redundancy of decoded tokens at every budget step"

    def label(self) -> str:
        return f"R-KV cache (keeps {_number(self.keep)} of the tokens)"


@dataclass(frozen=True)
class CartridgeCache(KVMethod):
    """A Cartridge: a trained KV cache of N tokens standing in for the text (peft's CartridgeConfig, sized
    as prefix tuning: N · 2 · L · K · d_h values in the adapter dtype; nothing grows with the text).
    Llama 3.1 8B, N = 2,048, bf16: 2,048 · 65,536 · 2 = 268,435,456 bytes, 1/64 of its 128K cache."""

    tokens: int = 2048
    name = "cartridge"
    kind = "trained cache"
    paper = (
        "Eyuboglu et al., 'Cartridges: Lightweight and general-purpose long context representations via "
        "self-study', arXiv 2506.06266: matches in-context learning quality with 38.6x less memory and 26.4x "
        "higher throughput (Llama 3 models; LongHealth, QASPER, MTOB)"
    )
    costs = "training per corpus by self-study (synthetic conversations, context distillation); peft CartridgeConfig"

    def layer_bits(self, mixer: Mixer, fmt: KVFormat) -> Fraction:
        return Fraction(0)

    def fixed_bits(self, q: Query) -> int:
        """peft's saved cartridge of N virtual tokens (:class:`estimator.stores.tuners_others.Cartridge`)."""
        from estimator.stores import STORES, Method

        footprint = STORES[Method.cartridge].footprint(q.with_(virtual_tokens=self.tokens))
        assert footprint is not None
        return footprint.saved_bytes * 8

    def label(self) -> str:
        return f"Cartridge ({self.tokens:,} trained tokens)"


def _attentions(q: Query) -> list[Attention]:
    from estimator.architecture import layout_of

    return [a for g in layout_of(q.spec).groups if (a := attention_of(g.mixer)) is not None]


def _convertible(q: Query, name: str) -> None:
    """Conversions act on softmax attention; a layer that caches another kind (latent already) is refused."""
    from estimator.architecture import layout_of

    for group in layout_of(q.spec).groups:
        if group.mixer.vectors(q.kv) and attention_of(group.mixer) is None:
            raise EstimatorError(
                f"{name} converts softmax attention to a latent cache; {q.spec.display_name}'s "
                f"{group.mixer.kind} layers cache something else; drop {name} for this model"
            )


def _number(value: Fraction | int) -> str:
    """3.5, 20, 0.3: a number as a short decimal where that is exact, else as a fraction (1/3)."""
    if isinstance(value, int):
        return str(value)
    short = f"{float(value):g}"
    return short if Fraction(short) == value else str(value)


METHODS: dict[str, type[KVMethod]] = {
    cls.name: cls
    for cls in (NVFP4, TurboQuant, CommVQ, KVTC, MHA2MLA, TransMLA, KVzip, KVzap, DMS, RKV, CartridgeCache)
}

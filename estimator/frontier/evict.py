"""Keeping fewer tokens (KVzip, KVzap, DMS, R-KV) or none (a Cartridge: a trained cache in their place)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from estimator.frontier.base import KVMethod, number

if TYPE_CHECKING:
    from estimator.layout.formats import KVFormat
    from estimator.layout.mixers import Mixer
    from estimator.query import Query


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
    title = "KVzip"
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
        return f"{self.title} cache (keeps {number(self.keep)} of the tokens)"


@dataclass(frozen=True)
class KVzap(KVzip):
    keep: Fraction = Fraction(3, 10)
    name = "kvzap"
    title = "KVzap"
    paper = (
        "Jegou and Jeblick, 'KVzap: Fast, Adaptive, and Faithful KV Cache Pruning', arXiv 2601.07891 (NVIDIA "
        "kvpress): 2-4x compression with negligible loss (Qwen3 8B, Llama 3.1 8B Instruct, Qwen3 32B; long-context "
        "and reasoning tasks); its kept fraction is adaptive (a score threshold): give the fraction to size"
    )
    costs = "a small trained scorer (linear or MLP on hidden states); works in prefill and decoding"


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
        return f"DMS cache ({number(self.ratio)}x fewer tokens)"


@dataclass(frozen=True)
class RKV(KVzip):
    keep: Fraction = Fraction(1, 10)
    name = "rkv"
    title = "R-KV"
    paper = (
        "Cai et al., 'R-KV: Redundancy-aware KV Cache Compression for Reasoning Models', arXiv 2505.24133: about "
        "100% of the full cache's accuracy with 10% of it on reasoning traces (DeepSeek-R1-Distill Llama 8B and "
        "Qwen 14B; math benchmarks); it compresses the decoded trace, not the given text"
    )
    costs = "no training; scoring importance and redundancy of decoded tokens at every budget step"


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
        from estimator.query.vocabulary import Method
        from estimator.stores import STORES

        footprint = STORES[Method.cartridge].footprint(q.with_(virtual_tokens=self.tokens))
        assert footprint is not None
        return footprint.saved_bytes * 8

    def label(self) -> str:
        return f"Cartridge ({self.tokens:,} trained tokens)"

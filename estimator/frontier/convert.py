"""Converting attention to a latent cache (MHA2MLA, TransMLA): fewer elements per token and layer.

Llama 2 7B (32 layers, 32 heads of 128: 8,192 elements per token and layer): MHA2MLA d_kv 64, r 8 keeps
2,560 (−68.75%; in int4 against FP16, −92.19%); TransMLA 512 + 64 keeps 576 (−92.97%).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from estimator.errors import EstimatorError
from estimator.frontier.base import KVMethod

if TYPE_CHECKING:
    from estimator.layout.formats import KVFormat
    from estimator.layout.mixers import Attention, Mixer
    from estimator.query import Query


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
        attn = mixer.cached_attention
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
        if mixer.cached_attention is None:
            return Fraction(mixer.bits_per_token(fmt))
        return Fraction(fmt.vector_bits(self.rank) + fmt.vector_bits(self.rope))

    def label(self) -> str:
        return f"TransMLA cache (latent {self.rank} + RoPE {self.rope})"


def _attentions(q: Query) -> list[Attention]:
    from estimator.architecture import layout_of

    return [a for g in layout_of(q.spec).groups if (a := g.mixer.cached_attention) is not None]


def _convertible(q: Query, name: str) -> None:
    """Conversions act on softmax attention; a layer that caches another kind (latent already) is refused."""
    from estimator.architecture import layout_of

    for group in layout_of(q.spec).groups:
        if group.mixer.vectors(q.kv) and group.mixer.cached_attention is None:
            raise EstimatorError(
                f"{name} converts softmax attention to a latent cache; {q.spec.display_name}'s "
                f"{group.mixer.kind} layers cache something else; drop {name} for this model"
            )

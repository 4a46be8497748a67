"""Multi-head latent attention as a mixer (DeepSeek V2/V3, Kimi K2): one latent per token and layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from estimator.layout.formats import KVFormat, MlaCache
from estimator.layout.mixers import MULTIPLY_ADD, Mixer, causal_positions, split


@dataclass(frozen=True)
class LatentAttention(Mixer):
    """Multi-head latent attention (DeepSeek V2/V3): keys and values rebuilt from one latent per token.

    Latent form: one vector of kv_lora_rank + qk_rope_head_dim per token (DeepSeek-V3: 576);
    expanded form: H keys of qk_nope + qk_rope and H values of v_head_dim.
    """

    heads: int
    kv_lora_rank: int
    rope_dim: int
    nope_dim: int
    v_head_dim: int
    index_head_dim: int = 0  # DeepSeek V3.2's sparse-attention indexer caches one key of this width too
    index_heads: int = 0  # its heads, each scoring every earlier key
    index_topk: int = 0  # the keys the main attention then attends per query (0: all)
    kind = "latent attention"

    def vectors(self, fmt: KVFormat) -> tuple[tuple[int, int], ...]:
        index = ((1, self.index_head_dim),) if self.index_head_dim else ()
        if fmt.mla is MlaCache.latent:
            return ((1, self.kv_lora_rank + self.rope_dim), *index)
        return ((self.heads, self.nope_dim + self.rope_dim), (self.heads, self.v_head_dim), *index)

    @property
    def attention_width(self) -> int:
        """H · (qk_nope + qk_rope + v_head_dim), computed per head (DeepSeek-V3: 128 · 320 = 40,960)."""
        return self.heads * (self.nope_dim + self.rope_dim + self.v_head_dim)

    def flops_width(self, fmt: KVFormat) -> int:
        """Elements a query meets per attended position. From the latent cache attention runs absorbed:
        W_UK folded into the query, scores over the latent and RoPE key, A·latent, then W_UV, so
        H · (2 · kv_lora_rank + qk_rope) (DeepSeek-V3: 128 · 1,088 = 139,264, 3.4x the expanded 40,960);
        the folded projections cost per token what kv_b_proj's up-projection does, so N_f stands."""
        if fmt.mla is MlaCache.latent:
            return self.heads * (2 * self.kv_lora_rank + self.rope_dim)
        return self.attention_width

    def attended_positions(self, n: int) -> int:
        """Σ_t min(t, top-k) with DeepSeek V3.2's sparse attention, else Σ_t t."""
        return causal_positions(n, self.index_topk or None)

    def attention_flops(self, n: int, fmt: KVFormat) -> int:
        """2 · width(fmt) · Σ_t positions, plus the indexer's 2 · H_i · d_i per earlier key (it scores all)."""
        indexer = MULTIPLY_ADD * self.index_heads * self.index_head_dim * causal_positions(n)
        return MULTIPLY_ADD * self.flops_width(fmt) * self.attended_positions(n) + indexer

    @property
    def rope_head_dim(self) -> int:
        """qk_rope_head_dim: only that part of each key and query rotates (DeepSeek-V3: 64)."""
        return self.rope_dim

    def shard(self, tp: int) -> Self:
        """H/t heads per GPU; the latent cache is shared by every head, so each GPU holds all of it
        (DeepSeek-V3, t = 8: 128 → 16 heads, 576 latent values per token on every GPU)."""
        if tp > 1:
            split(self.heads, tp, "the attention heads")
        return self

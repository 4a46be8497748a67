"""Multi-head latent attention as a mixer (DeepSeek V2/V3, Kimi K2): one latent per token and layer."""

from __future__ import annotations

from dataclasses import dataclass

from estimator.layout.formats import KVFormat, MlaCache
from estimator.layout.mixers import Mixer


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

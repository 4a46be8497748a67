"""How vLLM's V1 engine lays its KV pool out in blocks, for any mix of full, sliding and chunked layers.

``vllm/v1/core/kv_cache_utils.py``: layers with the same cache spec (full attention; a sliding window of w;
a chunk of C) form one type; every group holds the same number of layers, the smallest type's count (the
largest's when it is under 1.25 times the smallest), a type with more layers split into ⌈n / size⌉ groups.
Each of the ``size`` cache tensors is shared by one layer of every group, so

    blocks = ⌊pool / (page · size)⌋,  page = block · (bytes per token of one layer),
    "GPU KV cache size" = ⌊blocks / groups⌋ · block tokens,
    "Maximum concurrency" = blocks / Σ_groups blocks one request of max_model_len needs,

a full layer needing ⌈max_model_len / block⌉ blocks and a window of w (or a chunk of C) ⌈min(w − 1 +
max_num_batched_tokens, max_model_len) / block⌉ + 1. Gemma 2 9B (21 full and 21 sliding layers, w = 4,096,
block 16, page 131,072 bytes), a pool of 54.12 GiB: 21,111 blocks, 168,880 tokens, 21,111 / 1,025 = 20.60
(vLLM printed 21,110 blocks, 168,880 tokens and 20.60x for it).
Layers with unequal pages (different head sizes) or a recurrent state are not laid out here (None).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, assert_never, cast

from estimator.architecture import layout_of
from estimator.layout.compressed import CompressedAttention
from estimator.layout.latent import LatentAttention
from estimator.layout.mixers import Attention
from estimator.layout.recurrent import NoMixer, Parallel, RecurrentState
from estimator.memory.parallel import gpu_groups
from estimator.units import BITS_PER_BYTE

if TYPE_CHECKING:
    from estimator.layout import KVFormat
    from estimator.layout.kinds import AnyMixer
    from estimator.specs import ModelSpec

GROUP_SLACK = 1.25  # vLLM uses the largest type's count as the group size below this ratio


@dataclass(frozen=True, kw_only=True)
class BlockLayout:
    """The pool's layout: the page of one layer's block, layers per group, and each group's span (None:
    full attention, else the window or chunk it keeps)."""

    page_bytes: int
    group_layers: int
    spans: tuple[int | None, ...]  # one per group

    @property
    def groups(self) -> int:
        return len(self.spans)

    def blocks(self, pool_bytes: int) -> int:
        """⌊pool / (page · layers per group)⌋ (0 for an empty or negative pool)."""
        return max(0, pool_bytes // (self.page_bytes * self.group_layers))

    def tokens(self, pool_bytes: int, block: int) -> int:
        """⌊blocks / groups⌋ · block: what vLLM prints as its KV cache size in tokens."""
        return self.blocks(pool_bytes) // self.groups * block

    def request_blocks(self, max_model_len: int, batched_tokens: int, block: int) -> int:
        """Blocks one request of max_model_len tokens needs across the groups."""
        total = 0
        for span in self.spans:
            if span is None:
                total += -(-max_model_len // block)
            else:
                total += -(-min(span - 1 + batched_tokens, max_model_len) // block) + 1
        return total

    def concurrency(self, pool_bytes: int, max_model_len: int, batched_tokens: int, block: int) -> float:
        return self.blocks(pool_bytes) / self.request_blocks(max_model_len, batched_tokens, block)


def block_layout(
    spec: ModelSpec, fmt: KVFormat, tp: int, block: int, draft: ModelSpec | None = None
) -> BlockLayout | None:
    """The V1 layout of this model's cache (and a draft model's, whose layers join it) on one of ``tp`` GPUs,
    or None where it is not one vLLM pages alike (a recurrent state, layers of unequal page size)."""
    types: Counter[int | None] = Counter()
    pages = set()
    groups = [g for model in (spec, draft) if model is not None for g in gpu_groups(layout_of(model), tp)]
    for g in groups:
        mixer = cast("AnyMixer", g.mixer)
        match mixer:
            case NoMixer() | Attention(stores_kv=False):
                continue  # holds nothing of its own
            case RecurrentState() | Parallel() | CompressedAttention():
                return None  # a fixed state per sequence (a compressor's tail): not paged alike
            case Attention():
                span = mixer.sliding_window if mixer.sliding_window is not None else mixer.chunk
            case LatentAttention():
                span = None
            case _:
                assert_never(mixer)
        types[span] += g.layers
        pages.add(block * mixer.bits_per_token(fmt))
    if len(pages) != 1 or not types:
        return None
    (page_bits,) = pages
    smallest, largest = min(types.values()), max(types.values())
    size = largest if largest < GROUP_SLACK * smallest else smallest
    spans = tuple(span for span, n in types.items() for _ in range(-(-n // size)))
    return BlockLayout(page_bytes=-(-page_bits // BITS_PER_BYTE), group_layers=size, spans=spans)

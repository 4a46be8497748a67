"""What serving options add to a GPU: multi-LoRA slots, a draft model for speculative decoding, a CPU tier.

- ``--max-loras N --max-lora-rank R`` (vLLM's ``--enable-lora``): every LoRA-capable linear map holds N stacked
  A (R × its input shard) and B (its output shard × R) in the model's dtype, allocated with the weights
  (``vllm/lora/layers``: column-parallel maps keep A whole and split B, row-parallel maps split A): see
  :func:`lora_slot_bytes`.
- ``--draft-model NAME``: the draft's weights on every GPU (same tensor-parallel size) and its own KV layers,
  which join the target's in every block (V1 allocates one cache for both).
- ``--kv-offload SIZE``: a CPU tier for evicted blocks (vLLM's native offloading, LMCache): the tokens it holds
  at the same bytes per token as the GPU cache, per GPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from estimator.architecture import layout_of
from estimator.memory.engines import Reserve
from estimator.memory.parallel import shard_map

if TYPE_CHECKING:
    from estimator.memory.formats import WeightFormat
    from estimator.specs import ModelSpec


def lora_slot_bytes(spec: ModelSpec, tp: int, max_loras: int, max_rank: int, dtype_bytes: int = 2) -> int:
    """Σ over LoRA-capable maps (every non-expert, non-router linear map of every layer) of
    N · R · (d_in shard + d_out shard) · b. Llama 3.1 8B, N 4, R 16, TP 1, bf16: per layer the seven maps
    sum d_in + d_out to 2 · 8,192 + 2 · 5,120 + 2 · 18,432 + 18,432 = 81,920, so
    4 · 16 · 32 · 81,920 · 2 = 335,544,320 bytes."""
    total = 0
    for g in layout_of(spec).groups:
        for linear in g.linears(False):
            if linear.weight_params == 0 or "router" in linear.roles or linear.expert:
                continue
            shard = shard_map(linear, g.mixer, tp)
            total += g.layers * linear.count * (shard.d_in + shard.d_out)
    return max_loras * max_rank * total * dtype_bytes


def option_reserves(
    spec: ModelSpec,
    tp: int,
    weights: WeightFormat,
    max_loras: int,
    max_rank: int,
    draft: ModelSpec | None,
) -> tuple[Reserve, ...]:
    """The rows these options add before the pool (none when they are off)."""
    from estimator.memory.weights import weight_bytes_per_gpu

    rows = []
    if max_loras:
        rows.append(Reserve(
            label=f"LoRA slots: {max_loras} adapter(s) of rank {max_rank} on every linear map",
            bytes=lora_slot_bytes(spec, tp, max_loras, max_rank, weights.float_bytes),
            source="vllm/lora/layers: lora_a_stacked, lora_b_stacked (max_loras, 1, rank, in) / (.., out, rank)",
        ))  # fmt: skip
    if draft is not None:
        rows.append(Reserve(
            label=f"draft model {draft.display_name} ({weights.value}), for speculative decoding",
            bytes=weight_bytes_per_gpu(draft, weights, tp),
            source="vllm/v1/spec_decode: the draft loads on the same GPUs at the same tensor-parallel size",
        ))  # fmt: skip
    return tuple(rows)


def offload_tokens(offload_bytes: int, bytes_per_token: int) -> int:
    """Tokens a CPU tier of ``offload_bytes`` holds at the GPU cache's bytes per token (0 when off)."""
    return offload_bytes // bytes_per_token if bytes_per_token else 0

"""Bytes of the weights one GPU holds, in a storage format, under tensor parallelism."""

from __future__ import annotations

from typing import TYPE_CHECKING

from estimator.architecture import layout_of
from estimator.memory.formats import BNB_FORMATS, WeightFormat, matrix_bytes
from estimator.memory.parallel import shard_map, tensor_elements

if TYPE_CHECKING:
    from estimator.specs import ModelSpec


def weight_bytes_per_gpu(spec: ModelSpec, weights: WeightFormat, tp: int = 1, fused_experts: bool = False) -> int:
    """Bytes of the weights one GPU holds: every linear map's shard in ``weights`` (biases in 16 bits)
    plus the other tensors (embeddings, head, norms) in 16 bits (fp32 when the weights are fp32).

    Llama 3 70B in bf16 at t = 1: 70,553,706,496 · 2 = 141,107,412,992 bytes; at t = 8:
    17,640,734,720 per GPU (norms whole, the rest 1/8). ``fused_experts``: the experts as transformers >= 5
    holds them, 3-D parameters that bitsandbytes (nf4, int8) leaves in bf16, as it does every bare weight."""
    other = weights.float_bytes
    total = 0
    for g in layout_of(spec).groups:
        for linear in g.linears(fused_experts):
            if linear.weight_params == 0:  # tied to a map another layer owns
                continue
            shard = shard_map(linear, g.mixer, tp)
            skipped = "router" in linear.roles or (not linear.module and weights in BNB_FORMATS)
            kept = WeightFormat.bf16 if skipped and weights.quantised else weights
            total += g.layers * linear.count * (matrix_bytes(shard.d_in, shard.d_out, kept) + shard.bias * other)
    for tensor in layout_of(spec).other_tensors():
        total += tensor.copies * tensor_elements(tensor, spec.vocab_size, tp) * other
    return total

"""Bytes of the weights one GPU holds, in a storage format, under tensor parallelism.

Which tensors take the format: every linear map of the decoder layers, except
- routers (and, for bitsandbytes, bare parameters such as transformers >= 5's fused experts), kept 16-bit;
- ``mxfp4``: only the routed experts (gpt-oss's layout); attention and the rest stay 16-bit;
- ``gguf-*``: llama.cpp's per-tensor types for the whole file (:func:`~estimator.memory.gguf_quants.gguf_mix_bytes`).
Embeddings, head, norms and biases stay 16-bit (fp32 when the weights are fp32).

vLLM pads MXFP4 experts for its kernels (``mxfp4_round_up_hidden_size_and_intermediate_size``): ``ExpertPadding``
rounds the hidden size and each GPU's expert width up to the backend's multiples (:data:`VLLM_MXFP4_PADDING`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from estimator.architecture import layout_of
from estimator.errors import EstimatorError
from estimator.memory.formats import BNB_FORMATS, WeightFormat, ceil_div, matrix_bytes
from estimator.memory.parallel import Shard, shard_map, tensor_elements

if TYPE_CHECKING:
    from estimator.layout import LinearMap
    from estimator.specs import ModelSpec


@dataclass(frozen=True)
class ExpertPadding:
    """Multiples an engine rounds MXFP4 experts up to: the hidden size d and each GPU's expert width F/t."""

    hidden: int = 1
    width: int = 1


# vLLM's mxfp4_round_up_hidden_size_and_intermediate_size (fused_moe/oracle/mxfp4.py; the same rule in
# quantization/mxfp4.py create_weights since 0.10.1): backend -> (hidden, width) multiples
VLLM_MXFP4_PADDING = {
    "marlin": ExpertPadding(256, 128),  # GPUs without FP4 (A100; H100 in 0.10.1): n % 256, k % 128
    "flashinfer-trtllm": ExpertPadding(256, 256),  # Blackwell
    "flashinfer-cutlass": ExpertPadding(128, 128),
    "triton": ExpertPadding(1, 64),  # OpenAI's triton_kernels, Hopper's default since vLLM 0.11
}
NO_PADDING = ExpertPadding()


def round_up(n: int, multiple: int) -> int:
    return ceil_div(n, multiple) * multiple


def padded_expert(linear: LinearMap, shard: Shard, pad: ExpertPadding) -> Shard:
    """An expert shard as the engine allocates it: gate and up (d → F/t each) read a padded d and write a padded
    F/t per projection; down (F/t → d) the reverse; biases follow the outputs. gpt-oss-20b under Marlin
    (256, 128): gate 2,880 → 2,880 becomes 3,072 → 2,944."""
    if pad == NO_PADDING:
        return shard
    if "down" in linear.roles:
        d_out = round_up(shard.d_out, pad.hidden)
        return Shard(round_up(shard.d_in, pad.width), d_out, d_out if shard.bias else 0)
    parts = len(linear.roles & {"gate", "up"}) or 1
    d_out = parts * round_up(shard.d_out // parts, pad.width)
    return Shard(round_up(shard.d_in, pad.hidden), d_out, d_out if shard.bias else 0)


def linear_format(linear: LinearMap, weights: WeightFormat) -> WeightFormat:
    """The format ``linear`` is held in: ``weights``, or bf16 where that format leaves it (see the module)."""
    if not weights.quantised:
        return weights
    skipped = "router" in linear.roles or (not linear.module and weights in BNB_FORMATS)
    if weights is WeightFormat.mxfp4:
        skipped = not linear.expert
    return WeightFormat.bf16 if skipped else weights


def weight_bytes_per_gpu(
    spec: ModelSpec,
    weights: WeightFormat,
    tp: int = 1,
    fused_experts: bool = False,
    expert_padding: ExpertPadding = NO_PADDING,
) -> int:
    """Bytes of the weights one GPU holds: every linear map's shard in its format (:func:`linear_format`; biases in
    16 bits) plus the other tensors (embeddings, head, norms) in 16 bits (fp32 when the weights are fp32).

    Llama 3 70B in bf16 at t = 1: 70,553,706,496 · 2 = 141,107,412,992 bytes; at t = 8:
    17,640,734,720 per GPU (norms whole, the rest 1/8). ``fused_experts``: the experts as transformers >= 5
    holds them, 3-D parameters that bitsandbytes (nf4, int8) leaves in bf16, as it does every bare weight.
    gpt-oss-20b in mxfp4 (its checkpoint): experts 24 · 32 · (8,812,800 + 4,406,400 + 17,280 bf16 biases)
    plus 3,595,648,128 bytes of bf16 rest = 13,761,264,768 bytes."""
    if weights.gguf_mix:
        from estimator.memory.gguf_quants import gguf_mix_bytes

        if tp != 1:
            raise EstimatorError(
                f"{weights.value} is a llama.cpp file, which splits layers across GPUs rather than tensor-parallel "
                "shards; use --tp 1"
            )
        return gguf_mix_bytes(spec, weights.gguf_mix)
    layout = layout_of(spec)
    if weights is WeightFormat.mxfp4 and not any(m.expert for g in layout.groups for m in g.linears()):
        raise EstimatorError(
            f"{spec.name} has no routed experts, and mxfp4 here is gpt-oss's layout (MXFP4 experts only); "
            "use nvfp4 or another format"
        )
    other = weights.float_bytes
    total = 0
    for g in layout.groups:
        for linear in g.linears(fused_experts):
            if linear.weight_params == 0:  # tied to a map another layer owns
                continue
            shard = shard_map(linear, g.mixer, tp)
            kept = linear_format(linear, weights)
            if kept is WeightFormat.mxfp4 and linear.expert:
                shard = padded_expert(linear, shard, expert_padding)
            total += g.layers * linear.count * (matrix_bytes(shard.d_in, shard.d_out, kept) + shard.bias * other)
    for tensor in layout.other_tensors():
        total += tensor.copies * tensor_elements(tensor, spec.vocab_size, tp) * other
    return total


def outside_weight_bytes_per_gpu(params: int, weights: WeightFormat, tp: int = 1) -> int:
    """Bytes one GPU holds of a multimodal checkpoint's parts outside its language model (``--part all``): the
    vision tower and projector's P parameters in the weights' float width b (16 bits, fp32 when the weights are
    fp32: quantised checkpoints leave these parts unquantised), split evenly over t tensor-parallel GPUs as vLLM
    shards the tower's attention and MLP maps: ⌈P · b / t⌉. Gemma 3 27B (P = 416,866,032 + 6,194,304 =
    423,060,336) in bf16: 846,120,672 bytes at t = 1, 211,530,168 at t = 4."""
    return ceil_div(params * weights.float_bytes, tp)

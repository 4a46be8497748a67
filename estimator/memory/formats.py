"""How weights are stored: 16- and 32-bit floats, and quantised formats with every tensor they really hold.

A quantised checkpoint keeps more than its packed values: scales per block or group, zero points,
permutation indices, lookup tables. Each format here counts the tensors its library writes for one
weight matrix of d_out × d_in (``nn.Linear`` layout), so the bytes are exact, not "4 bits per weight".

Which tensors are quantised: the linear maps of the decoder layers (routed experts included); routers,
embeddings, the output head, norms, biases and every other tensor stay in ``base`` (bf16), as GPTQ,
AWQ, bitsandbytes (which skips ``lm_head``) and DeepSeek's fp8 checkpoints leave them. bitsandbytes
replaces only ``nn.Linear`` modules, so it also leaves transformers >= 5's fused 3-D expert tensors in bf16.
Two formats differ in scope: ``mxfp4`` is gpt-oss's layout, MXFP4 on the routed experts only (attention,
router, embeddings and head bf16, as its ``modules_to_not_convert`` says and vLLM serves it); ``nvfp4`` covers
every decoder linear map (ModelOpt's ``exclude_modules: [lm_head]``). The ``gguf-*`` formats are llama.cpp's
file types, a type per tensor (:mod:`estimator.memory.gguf_quants`), not one matrix format.
"""

from __future__ import annotations

from enum import StrEnum

from estimator.errors import EstimatorError

FP32_BYTES = 4
FP16_BYTES = 2
INT32_BYTES = 4
FP8_BLOCK = 128  # DeepSeek-V3's quantization_config: weight_block_size [128, 128], fp32 weight_scale_inv
GPTQ_GROUP = 128  # GPTQ and AWQ's usual group_size
NF4_BLOCK = 64  # bitsandbytes' blocksize for 4-bit weights
NF4_STATE_BLOCK = 256  # bitsandbytes' blocksize for the double-quantised absmax
NF4_CODE_ENTRIES = 16  # the fp32 4-bit code (quant_map) every quantised weight carries
NF4_STATE_CODE_ENTRIES = 256  # the fp32 8-bit code double quantisation decodes absmax with (nested_quant_map)
MXFP4_BLOCK = 32  # OCP microscaling: 32 e2m1 values (16 bytes, two per byte) share one e8m0 scale byte
MXFP4_BLOCK_BYTES = 16 + 1
NVFP4_GROUP = 16  # NVFP4: 16 e2m1 values (8 bytes) share one fp8-e4m3 scale byte
NVFP4_TENSOR_SCALES = 2  # fp32 weight_scale_2 and input_scale, one each per matrix (ModelOpt, vLLM)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class WeightFormat(StrEnum):
    """A storage format for weight matrices (see each ``*_bytes`` function for its tensors)."""

    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"
    fp8 = "fp8"
    fp8_block = "fp8-block"
    int8 = "int8"
    gptq_int4 = "int4-gptq"
    awq_int4 = "int4-awq"
    w4a16_int4 = "int4-w4a16"
    nf4 = "nf4"
    nf4_no_double_quant = "nf4-no-dq"
    mxfp4 = "mxfp4"
    nvfp4 = "nvfp4"
    gguf_q4_0 = "gguf-q4_0"
    gguf_q4_1 = "gguf-q4_1"
    gguf_q5_0 = "gguf-q5_0"
    gguf_q5_1 = "gguf-q5_1"
    gguf_q8_0 = "gguf-q8_0"
    gguf_q2_k = "gguf-q2_k"
    gguf_q3_k_s = "gguf-q3_k_s"
    gguf_q3_k_m = "gguf-q3_k_m"
    gguf_q3_k_l = "gguf-q3_k_l"
    gguf_q4_k_s = "gguf-q4_k_s"
    gguf_q4_k_m = "gguf-q4_k_m"
    gguf_q5_k_s = "gguf-q5_k_s"
    gguf_q5_k_m = "gguf-q5_k_m"
    gguf_q6_k = "gguf-q6_k"

    @property
    def quantised(self) -> bool:
        return self not in (WeightFormat.fp32, WeightFormat.bf16, WeightFormat.fp16)

    @property
    def gguf_mix(self) -> str | None:
        """llama.cpp's file type name (``Q4_K_M``) of a ``gguf-*`` format, None for the others."""
        return self.value.removeprefix("gguf-").upper() if self.value.startswith("gguf-") else None

    @property
    def float_bytes(self) -> int:
        """Bytes per element of a float format (fp32 4, bf16/fp16 2); quantised formats keep 16-bit."""
        return FP32_BYTES if self is WeightFormat.fp32 else FP16_BYTES

    def describe(self) -> str:
        return DESCRIPTIONS[self]


BNB_FORMATS = frozenset({WeightFormat.int8, WeightFormat.nf4, WeightFormat.nf4_no_double_quant})  # nn.Linear only

DESCRIPTIONS = {
    WeightFormat.fp32: "fp32, 4 bytes per weight",
    WeightFormat.bf16: "bf16, 2 bytes per weight",
    WeightFormat.fp16: "fp16, 2 bytes per weight",
    WeightFormat.fp8: "fp8 (e4m3), one fp32 scale per matrix",
    WeightFormat.fp8_block: "fp8 (e4m3) with an fp32 scale per 128 × 128 block (DeepSeek-V3's checkpoints)",
    WeightFormat.int8: "int8 per row with an fp32 scale per row (bitsandbytes LLM.int8: CB, SCB)",
    WeightFormat.gptq_int4: "int4 GPTQ, groups of 128: packed int32 weights and zeros, fp16 scales, int32 g_idx",
    WeightFormat.awq_int4: "int4 AWQ, groups of 128: packed int32 weights and zeros, fp16 scales",
    WeightFormat.nf4: "NF4 (bitsandbytes, QLoRA): blocks of 64, absmax double-quantised to 8 bits",
    WeightFormat.nf4_no_double_quant: "NF4 (bitsandbytes): blocks of 64 with an fp32 absmax each",
    WeightFormat.mxfp4: "MXFP4 on the routed experts only (gpt-oss's layout): 32 e2m1 values in 16 bytes + an e8m0 "
    "scale byte; attention, router, embeddings, head bf16",
    WeightFormat.w4a16_int4: "int4 W4A16 (compressed-tensors pack-quantized, symmetric, groups of 128): packed int32 "
    "weights, 16-bit scales, no zeros",
    WeightFormat.nvfp4: "NVFP4 (ModelOpt, compressed-tensors) on every decoder linear map: 16 e2m1 values in 8 bytes + "
    "an fp8 scale, fp32 weight_scale_2 and input_scale per matrix; embeddings, lm_head bf16",
    **{
        fmt: f"GGUF {fmt.gguf_mix} (llama.cpp's quantiser: a ggml type per tensor; norms f32; one GPU)"
        for fmt in WeightFormat
        if fmt.gguf_mix
    },
}


def fp8_block_bytes(d_in: int, d_out: int) -> int:
    """One byte per weight plus ``weight_scale_inv``, fp32 of ⌈d_out/128⌉ × ⌈d_in/128⌉.
    DeepSeek-V3's q_b_proj, 1,536 → 24,576: 37,748,736 + 192 · 12 · 4 = 37,757,952 bytes."""
    return d_in * d_out + ceil_div(d_out, FP8_BLOCK) * ceil_div(d_in, FP8_BLOCK) * FP32_BYTES


def int8_rowwise_bytes(d_in: int, d_out: int) -> int:
    """bitsandbytes ``Int8Params``: CB, int8 d_out × d_in, and SCB, one fp32 absmax per row.
    Llama 3 70B's down_proj, 28,672 → 8,192: 234,881,024 + 32,768 = 234,913,792 bytes."""
    return d_in * d_out + d_out * FP32_BYTES


def gptq_bytes(d_in: int, d_out: int, group: int = GPTQ_GROUP) -> int:
    """GPTQ (AutoGPTQ/GPTQModel, 4 bits): qweight int32 ⌈d_in/8⌉ × d_out, qzeros int32 ⌈d_in/G⌉ × ⌈d_out/8⌉,
    scales fp16 ⌈d_in/G⌉ × d_out, g_idx int32 d_in. Llama 3 70B's q_proj (8,192 → 8,192):
    33,554,432 + 262,144 + 1,048,576 + 32,768 = 34,897,920 bytes (4.16 bits per weight)."""
    groups = ceil_div(d_in, group)
    qweight = ceil_div(d_in, 8) * d_out * INT32_BYTES
    qzeros = groups * ceil_div(d_out, 8) * INT32_BYTES
    return qweight + qzeros + groups * d_out * FP16_BYTES + d_in * INT32_BYTES


def awq_bytes(d_in: int, d_out: int, group: int = GPTQ_GROUP) -> int:
    """AWQ (GEMM, 4 bits): qweight int32 d_in × ⌈d_out/8⌉, qzeros int32 ⌈d_in/G⌉ × ⌈d_out/8⌉,
    scales fp16 ⌈d_in/G⌉ × d_out. Llama 3 70B's q_proj: 33,554,432 + 262,144 + 1,048,576 = 34,865,152."""
    groups = ceil_div(d_in, group)
    packed = ceil_div(d_out, 8) * INT32_BYTES
    return d_in * packed + groups * packed + groups * d_out * FP16_BYTES


def nf4_bytes(d_in: int, d_out: int, double_quant: bool = True) -> int:
    """bitsandbytes 4-bit (``Params4bit``, as measured on bitsandbytes 0.50): n = d_in · d_out weights packed
    two per byte, ⌈n/2⌉, and the fp32 code of 16 entries (64 bytes); an absmax per block of 64, fp32 each,
    or with double quantisation one uint8 each plus an fp32 absmax per 256 of those, the fp32 code of 256
    entries (1,024 bytes) and an fp32 offset. Llama 3 70B's q_proj, n = 67,108,864:
    33,554,432 + 1,048,576 + 4 · 4,096 + 64 + 1,024 + 4 = 34,620,484 bytes (4.13 bits per weight)."""
    n = d_in * d_out
    blocks = ceil_div(n, NF4_BLOCK)
    code = NF4_CODE_ENTRIES * FP32_BYTES
    if not double_quant:
        return ceil_div(n, 2) + blocks * FP32_BYTES + code
    nested = ceil_div(blocks, NF4_STATE_BLOCK) * FP32_BYTES + NF4_STATE_CODE_ENTRIES * FP32_BYTES + FP32_BYTES
    return ceil_div(n, 2) + blocks + code + nested


def mxfp4_bytes(d_in: int, d_out: int) -> int:
    """OCP MXFP4 as gpt-oss stores it (``*_blocks`` uint8 d_out × d_in/32 × 16, ``*_scales`` uint8 d_out × d_in/32):
    17 bytes per 32 weights, 4.25 bits. gpt-oss-20b's gate_up_proj of one expert, 2,880 → 5,760:
    5,760 · 90 · (16 + 1) = 8,812,800 bytes."""
    if d_in % MXFP4_BLOCK:
        raise EstimatorError(
            f"MXFP4 packs inputs in blocks of 32 and {d_in:,} is no multiple of 32; give the engine's padding "
            "(vLLM rounds each GPU's expert width up to 64 or 128) or another tensor-parallel size"
        )
    return d_out * (d_in // MXFP4_BLOCK) * MXFP4_BLOCK_BYTES


def nvfp4_bytes(d_in: int, d_out: int) -> int:
    """NVFP4 (ModelOpt ``weight`` uint8 d_out × d_in/2, ``weight_scale`` fp8 d_out × d_in/16, fp32 ``weight_scale_2``
    and ``input_scale``): n/2 + n/16 + 8 bytes for n = d_in · d_out, 4.5 bits. Llama 3.1 8B's q_proj (4,096²):
    8,388,608 + 1,048,576 + 8 = 9,437,192 bytes."""
    if d_in % NVFP4_GROUP:
        raise EstimatorError(f"NVFP4 needs an input width that is a multiple of 16, not {d_in:,}; pick another format")
    n = d_in * d_out
    return n // 2 + n // NVFP4_GROUP + NVFP4_TENSOR_SCALES * FP32_BYTES


def w4a16_bytes(d_in: int, d_out: int, group: int = GPTQ_GROUP) -> int:
    """compressed-tensors W4A16 (``pack-quantized``, symmetric, as llm-compressor writes it): ``weight_packed``
    int32 d_out × d_in/8, ``weight_scale`` 16-bit d_out × ⌈d_in/G⌉, ``weight_shape`` int64 (2,); no zero points,
    no g_idx. Llama 3.1 8B's q_proj (4,096²): 8,388,608 + 262,144 + 16 = 8,650,768 bytes (4.125 bits per weight)."""
    return ceil_div(d_in, 8) * d_out * INT32_BYTES + ceil_div(d_in, group) * d_out * FP16_BYTES + 2 * 8


def matrix_bytes(d_in: int, d_out: int, fmt: WeightFormat) -> int:
    """Bytes of one d_out × d_in weight matrix stored in ``fmt`` (no bias)."""
    if fmt.gguf_mix:
        raise EstimatorError(f"{fmt.value} gives each tensor its own type; size a whole model with gguf_mix_bytes")
    if fmt is WeightFormat.mxfp4:
        return mxfp4_bytes(d_in, d_out)
    if fmt is WeightFormat.nvfp4:
        return nvfp4_bytes(d_in, d_out)
    if not fmt.quantised:
        return d_in * d_out * fmt.float_bytes
    if fmt is WeightFormat.fp8:
        return d_in * d_out + FP32_BYTES
    if fmt is WeightFormat.fp8_block:
        return fp8_block_bytes(d_in, d_out)
    if fmt is WeightFormat.int8:
        return int8_rowwise_bytes(d_in, d_out)
    if fmt is WeightFormat.gptq_int4:
        return gptq_bytes(d_in, d_out)
    if fmt is WeightFormat.awq_int4:
        return awq_bytes(d_in, d_out)
    if fmt is WeightFormat.w4a16_int4:
        return w4a16_bytes(d_in, d_out)
    return nf4_bytes(d_in, d_out, double_quant=fmt is WeightFormat.nf4)

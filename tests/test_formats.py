"""Weight formats of #21: MXFP4, NVFP4 and llama.cpp's GGUF mixes, each tensor's bytes derived by hand here from the
real configs, and the totals held against published checkpoint sizes, GGUF file sizes and vLLM start-up logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from estimator.errors import EstimatorError
from estimator.hf_config import spec_from_hf_config
from estimator.memory.checkpoint_format import checkpoint_weight_format, gguf_file_format, gguf_tensor_bytes
from estimator.memory.formats import WeightFormat, matrix_bytes, mxfp4_bytes, nvfp4_bytes
from estimator.memory.gguf_quants import (
    GGML_BLOCKS,
    MixModel,
    ggml_tensor_bytes,
    gguf_mix_bytes,
    mix_model,
    mix_type,
    use_more_bits,
)
from estimator.memory.weights import VLLM_MXFP4_PADDING, weight_bytes_per_gpu
from estimator.zoo import load_spec

GiB = 2**30
CONFIGS = Path(__file__).parent / "data" / "hf_configs"
# gpt-oss-20b's config.json: 24 layers, d = 2,880, 32 experts of F = 2,880, 64 query / 8 KV heads of 64, V = 201,088
L, D, F, E, H, K, DH, V = 24, 2880, 2880, 32, 64, 8, 64, 201088
# vLLM's YaRN cos/sin cache for gpt-oss (get_rope, dtype float32): original 4,096 positions × factor 32 = 131,072
# positions × rotary_dim 64 × 4 bytes; allocated during load_model, so inside "Model loading took", not a weight
ROPE_CACHE_BYTES = 4096 * 32 * 64 * 4


def one_line(exc: pytest.ExceptionInfo[EstimatorError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


# ---- one matrix per format, by hand -------------------------------------------------------------------------------


def test_mxfp4_and_nvfp4_matrix_bytes_by_hand() -> None:
    # gpt-oss's down_proj of one expert, 2,880 -> 2,880: *_blocks uint8 [2880, 90, 16], *_scales uint8 [2880, 90]
    assert mxfp4_bytes(2880, 2880) == 2880 * 90 * 16 + 2880 * 90 * 1 == 4_406_400
    assert matrix_bytes(2880, 5760, WeightFormat.mxfp4) == 5760 * 90 * 17 == 8_812_800  # gate_up_proj of one expert
    # Llama 3.1 8B's down_proj (14,336 -> 4,096) in NVFP4: weight uint8 [4096, 7168], weight_scale fp8 [4096, 896],
    # weight_scale_2 and input_scale one fp32 each
    assert nvfp4_bytes(14336, 4096) == 4096 * 7168 + 4096 * 896 + 4 + 4 == 33_030_152
    assert 8 * (nvfp4_bytes(14336, 4096) - 8) / (14336 * 4096) == 4.5  # bits per weight, the two scalars aside


def test_ggml_blocks_are_the_gguf_packages() -> None:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    for name, sizes in GGML_BLOCKS.items():
        assert GGML_QUANT_SIZES[GGMLQuantizationType[name]] == sizes, name


def test_ggml_types_on_one_matrix_by_hand() -> None:
    # Llama 3 8B's attn_q, 4,096 rows of 4,096: 128 blocks of 32 or 16 super-blocks of 256 per row
    rows = 4096
    expected = {
        "Q4_0": rows * 128 * 18,  # fp16 scale + 16 bytes of nibbles
        "Q4_1": rows * 128 * 20,  # + fp16 min
        "Q5_0": rows * 128 * 22,  # + 4 bytes of fifth bits
        "Q5_1": rows * 128 * 24,
        "Q8_0": rows * 128 * 34,  # fp16 scale + 32 int8
        "Q2_K": rows * 16 * 84,
        "Q3_K": rows * 16 * 110,
        "Q4_K": rows * 16 * 144,  # 2 fp16 + 12 bytes of 6-bit scales + 128 bytes of nibbles
        "Q5_K": rows * 16 * 176,
        "Q6_K": rows * 16 * 210,
    }
    for name, size in expected.items():
        assert ggml_tensor_bytes(4096, rows, name) == size, name
    assert expected["Q4_K"] == 9_437_184 and expected["Q6_K"] == 13_762_560


def test_use_more_bits_picks_llamacpps_layers() -> None:
    # i < L/8 or i >= 7L/8 or (i - L/8) % 3 == 2, L = 32
    assert [i for i in range(32) if use_more_bits(i, 32)] == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]


# ---- MXFP4: gpt-oss ------------------------------------------------------------------------------------------------


def gpt_oss_rest_per_layer_bytes(tp: int) -> int:
    """bf16 bytes of a layer outside the experts on one GPU: q, k, v, o with biases (o's bias whole), H sinks,
    the router E x d + E (replicated), two norms of d."""
    q_o = 2 * D * (H // tp) * DH
    k_v = 2 * D * max(1, K // tp) * DH
    biases = (H // tp) * DH + 2 * max(1, K // tp) * DH + D
    return 2 * (q_o + k_v + biases + H // tp + (D * E + E) + 2 * D)


def test_gpt_oss_20b_mxfp4_checkpoint_by_hand() -> None:
    """The checkpoint's own layout: experts' *_blocks and *_scales (17 bytes per 32 weights), bf16 expert biases,
    everything else bf16. The published checkpoint size is 12.8 GiB (gpt-oss model card, Table 1,
    https://arxiv.org/abs/2508.10925) and the Hugging Face file listing sums to 4.79 + 4.80 + 4.17 = 13.76 GB
    (https://smeltcore.com/recipes/gpt-oss-20b-on-rtx-4090-mxfp4-chat-via-ollama-or-vllm/, from the HF tree API)."""
    spec = load_spec("gpt-oss-20b")
    experts = E * ((2 * F) * (D // 32) * 17 + D * (F // 32) * 17)  # gate_up [2F, d/32] and down [d, F/32] blocks
    expert_biases = E * (2 * F + D) * 2
    per_layer = experts + expert_biases + gpt_oss_rest_per_layer_bytes(1)
    by_hand = L * per_layer + 2 * V * D * 2 + D * 2  # untied embedding and head, final norm
    assert by_hand == 13_761_264_768
    assert weight_bytes_per_gpu(spec, WeightFormat.mxfp4) == by_hand
    assert round(by_hand / GiB, 1) == 12.8  # the model card's 12.8 GiB
    assert abs(by_hand - 13.76e9) < 0.005e9  # the listing's 13.76 GB (2 decimals); the 3 files add JSON headers only


def test_gpt_oss_20b_served_by_vllm_on_a100() -> None:
    """vLLM on an A100 (no FP4 units: the Marlin backend) pads the experts to hidden 3,072 (multiple of 256) and
    width 2,944 (multiple of 128), vLLM's mxfp4_round_up_hidden_size_and_intermediate_size. Published:
    'Model loading took 13.72 GiB memory' for openai/gpt-oss-20b on an A100 40GB
    (https://myoceane.fr/index.php/ai-vllm-a100-gemma-4/). The tool counts the weights plus the 32 MiB rope cache
    vLLM builds while loading; the 19 MB (0.13%) left are Marlin's workspace and repacking buffers, not modelled,
    so the tolerance is 0.3%."""
    spec = load_spec("gpt-oss-20b")
    hp, wp = 3072, 2944
    w13 = E * (2 * wp) * (hp // 2 + hp // 32)  # uint8 [E, 2F', d'/2] and scales [E, 2F', d'/32]
    w2 = E * hp * (wp // 2 + wp // 32)
    biases = E * (2 * wp + hp) * 2  # bf16, padded with the weights
    by_hand = L * (w13 + w2 + biases + gpt_oss_rest_per_layer_bytes(1)) + 2 * V * D * 2 + D * 2
    padded = weight_bytes_per_gpu(spec, WeightFormat.mxfp4, expert_padding=VLLM_MXFP4_PADDING["marlin"])
    assert padded == by_hand == 14_679_227_520
    assert (padded + ROPE_CACHE_BYTES) / GiB == pytest.approx(13.72, rel=0.003)
    # unpadded, the checkpoint's layout is 6.6% short of what vLLM holds
    assert weight_bytes_per_gpu(spec, WeightFormat.mxfp4) / GiB < 13.72 * 0.94


def test_gpt_oss_120b_served_by_vllm_0_10_on_h100() -> None:
    """gpt-oss-120b (extra/gpt-oss-120b.json: 36 layers, 128 experts) on one H100 with vLLM 0.10.1, whose log
    says 'Weight-only FP4 compression will be used leveraging the Marlin kernel' and 'Model loading took 65.9651 GiB'
    (https://github.com/vllm-project/vllm/issues/23278). Marlin padding as above; the model card gives 60.8 GiB for
    the checkpoint (https://arxiv.org/abs/2508.10925, Table 1)."""
    spec = spec_from_hf_config(CONFIGS / "extra" / "gpt-oss-120b.json")
    layers, experts = 36, 128
    checkpoint = weight_bytes_per_gpu(spec, WeightFormat.mxfp4)
    rest = gpt_oss_rest_per_layer_bytes(1) + 2 * (D + 1) * (experts - E)  # the router has 128 rows and biases
    outside = 2 * V * D * 2 + D * 2
    assert checkpoint == layers * (experts * (2 * F * 90 * 17 + D * 90 * 17 + (2 * F + D) * 2) + rest) + outside
    assert round(checkpoint / GiB, 1) == 60.8
    served = weight_bytes_per_gpu(spec, WeightFormat.mxfp4, expert_padding=VLLM_MXFP4_PADDING["marlin"])
    assert served == layers * (experts * (5888 * 1632 + 3072 * 1564 + (5888 + 3072) * 2) + rest) + outside
    assert (served + ROPE_CACHE_BYTES) / GiB == pytest.approx(65.9651, rel=0.001)  # 40 MB (0.06%) unexplained


def test_gpt_oss_20b_mxfp4_split_over_two_gpus_by_hand() -> None:
    """t = 2: each expert's gate and up keep F/2 = 1,440 outputs, down 1,440 inputs (45 blocks of 32); down's bias
    whole; attention by heads; embedding and head by vocabulary rows (201,088 is a multiple of 64)."""
    spec = load_spec("gpt-oss-20b")
    half = F // 2
    experts = E * (2 * half * 90 * 17 + D * (half // 32) * 17 + (2 * half + D) * 2)
    by_hand = L * (experts + gpt_oss_rest_per_layer_bytes(2)) + 2 * (V // 2) * D * 2 + D * 2
    assert weight_bytes_per_gpu(spec, WeightFormat.mxfp4, 2) == by_hand == 6_885_267_072
    # vLLM's Triton backend (Hopper's default) rounds F/2 up to a multiple of 64: 1,440 -> 1,472
    wp = 1472
    triton = E * (2 * wp * (D // 2 + D // 32) + D * (wp // 2 + wp // 32) + (2 * wp + D) * 2)
    padded = weight_bytes_per_gpu(spec, WeightFormat.mxfp4, 2, expert_padding=VLLM_MXFP4_PADDING["triton"])
    assert padded == L * (triton + gpt_oss_rest_per_layer_bytes(2)) + 2 * (V // 2) * D * 2 + D * 2


def test_gpt_oss_120b_over_four_gpus_needs_the_engines_padding() -> None:
    """t = 4 leaves each GPU 2,880 / 4 = 720 expert columns, 22.5 blocks of 32: the checkpoint's layout cannot split
    so; vLLM's Triton backend rounds 720 up to 768 (24 blocks)."""
    spec = spec_from_hf_config(CONFIGS / "extra" / "gpt-oss-120b.json")
    with pytest.raises(EstimatorError) as exc:
        weight_bytes_per_gpu(spec, WeightFormat.mxfp4, 4)
    assert "720" in one_line(exc)
    wp, experts = 768, 128
    per_expert = 2 * wp * (D // 2 + D // 32) + D * (wp // 2 + wp // 32) + (2 * wp + D) * 2
    rest = 2 * ((2 * D * (H // 4) * DH + 2 * D * (K // 4) * DH) + ((H // 4) * DH + 2 * (K // 4) * DH + D) + H // 4)
    rest += 2 * ((D + 1) * experts + 2 * D)  # router replicated, two norms
    by_hand = 36 * (experts * per_expert + rest) + 2 * (V // 4) * D * 2 + D * 2
    assert weight_bytes_per_gpu(spec, WeightFormat.mxfp4, 4, expert_padding=VLLM_MXFP4_PADDING["triton"]) == by_hand


# ---- NVFP4 ---------------------------------------------------------------------------------------------------------


def test_nvfp4_llama31_8b_by_hand_at_t1_and_t2() -> None:
    """Every decoder linear map in NVFP4 (n/2 + n/16 + 8 bytes), embedding, head and norms bf16 (ModelOpt's
    exclude_modules [lm_head]; the embedding is no linear map)."""
    spec = load_spec("llama3.1-8b")
    d, f, kv, vocab = 4096, 14336, 1024, 128256

    def fp4(d_in: int, d_out: int) -> int:
        return d_in * d_out // 2 + d_in * d_out // 16 + 8

    for tp in (1, 2):
        maps = [(d, d // tp), (d, kv // tp), (d, kv // tp), (d // tp, d), (d, f // tp), (d, f // tp), (f // tp, d)]
        layer = sum(fp4(i, o) for i, o in maps) + 2 * d * 2
        by_hand = 32 * layer + 2 * (vocab // tp) * d * 2 + d * 2  # 128,256 is a multiple of 64: no vocab padding
        assert weight_bytes_per_gpu(spec, WeightFormat.nvfp4, tp) == by_hand
    assert weight_bytes_per_gpu(spec, WeightFormat.nvfp4) == 6_027_749_120


# ---- GGUF ----------------------------------------------------------------------------------------------------------


def test_gguf_q4_k_m_llama3_8b_by_hand() -> None:
    """Llama 3 8B in Q4_K_M: attn_v and ffn_down Q6_K on the 16 layers use_more_bits picks, Q4_K elsewhere;
    output Q6_K, token_embd Q4_K; norms f32."""
    spec = load_spec("llama3-8b")

    def q(n: int, per: int) -> int:  # n values in super-blocks of 256
        return n // 256 * per

    d, kv, f, vocab = 4096, 1024, 14336, 128256
    base = q(d * d, 144) * 2 + q(d * kv, 144) * 2 + q(d * f, 144) * 3 + 2 * d * 4
    more = (q(d * kv, 210) - q(d * kv, 144)) + (q(d * f, 210) - q(d * f, 144))
    by_hand = 32 * base + 16 * more + q(vocab * d, 144) + q(vocab * d, 210) + d * 4
    assert by_hand == 4_912_898_048
    assert gguf_mix_bytes(spec, "Q4_K_M") == by_hand
    assert weight_bytes_per_gpu(spec, WeightFormat.gguf_q4_k_m) == by_hand


# bartowski/LLaMA3-iterative-DPO-final-GGUF (a Llama 3 8B, llama.cpp b2854), README's table of file sizes:
# https://huggingface.co/bartowski/LLaMA3-iterative-DPO-final-GGUF
LLAMA3_8B_FILES_GB = {
    "Q8_0": 8.54, "Q6_K": 6.59, "Q5_K_M": 5.73, "Q5_K_S": 5.59, "Q4_K_M": 4.92,
    "Q4_K_S": 4.69, "Q3_K_L": 4.32, "Q3_K_M": 4.01, "Q3_K_S": 3.66, "Q2_K": 3.17,
}  # fmt: skip
# bartowski/Meta-Llama-3.1-70B-Instruct-GGUF (llama.cpp b3472), single-file quants of the README's table:
# https://huggingface.co/bartowski/Meta-Llama-3.1-70B-Instruct-GGUF
LLAMA31_70B_FILES_GB = {
    "Q5_K_S": 48.66, "Q4_K_M": 42.52, "Q4_K_S": 40.35, "Q3_K_L": 37.14, "Q3_K_M": 34.27, "Q3_K_S": 30.91, "Q2_K": 26.38,
}  # fmt: skip
# bartowski/gemma-2-9b-it-GGUF, README's table (tied head: token_embd takes the head's type):
# https://huggingface.co/bartowski/gemma-2-9b-it-GGUF
GEMMA2_9B_FILES_GB = {
    "Q8_0": 9.83, "Q6_K": 7.59, "Q5_K_M": 6.65, "Q5_K_S": 6.48, "Q4_K_M": 5.76,
    "Q4_K_S": 5.48, "Q3_K_L": 5.13, "Q3_K_M": 4.76, "Q3_K_S": 4.34, "Q2_K": 3.81,
}  # fmt: skip
# A GGUF file is its tensors plus one metadata block, the same for every mix of a model (the tokenizer's 128,256
# tokens, their types and 280,147 merges, the chat template, a few keys): a few MB. The tables give GB to 2 decimals,
# cut (not rounded: Q6_K's 6,588,170,240 bytes of tensors alone round to 6.59, with any metadata to 6.60), so
# each file is in [size, size + 0.01 GB) and each mix bounds the metadata to a 10 MB window.
METADATA_MAX_BYTES = 20_000_000


@pytest.mark.parametrize(
    ("name", "files"),
    [("llama3-8b", LLAMA3_8B_FILES_GB), ("llama3.1-70b", LLAMA31_70B_FILES_GB), ("gemma2-9b", GEMMA2_9B_FILES_GB)],
)
def test_gguf_mixes_against_published_file_sizes(name: str, files: dict[str, float]) -> None:
    spec = load_spec(name)
    low, high = 0.0, float(METADATA_MAX_BYTES)
    for mix, size_gb in files.items():
        metadata_low = size_gb * 1e9 - gguf_mix_bytes(spec, mix)
        assert -1e7 < metadata_low < METADATA_MAX_BYTES, mix
        low, high = max(low, metadata_low), min(high, metadata_low + 1e7)
    # one metadata size fits every file of the model: 7.10-8.54 MB for Llama 3 8B, 12.75-15.81 MB for Llama 3.1
    # 70B, 10.66-12.46 MB for Gemma 2 9B (256,000 tokens with scores)
    assert low < high, (low, high)


def test_gguf_70b_class_raises_attn_v() -> None:
    """llama.cpp's LLM_TYPE_70B (llama with 80 layers and K < H): an attn_v that would be Q3_K or Q4_K is Q5_K.
    Without it Llama 3.1 70B's Q4_K_M would be 40 · 1,024 · 8,192 / 256 · 32 bytes = 41.9 MB smaller,
    which the 42.52 GB file above rules out."""
    model = mix_model(load_spec("llama3.1-70b"))
    assert model == MixModel(layers=80, n_gqa=8, is_70b=True, tied=False)
    assert mix_type("Q4_K_M", "attn_v", 40, model) == "Q5_K"  # 40 is not a use_more_bits layer of 80
    assert mix_type("Q4_K_M", "attn_v", 0, model) == "Q6_K"
    assert not mix_model(load_spec("llama3-8b")).is_70b


def test_gguf_tied_head_and_fallback_rows() -> None:
    """Gemma 2 9B ties its head: token_embd takes the head's Q6_K. A row that 256 does not divide falls back as
    tensor_type_fallback does: Q4_K to Q5_0, Q6_K to Q8_0, and to F16 when 32 does not divide it either."""
    gemma = mix_model(load_spec("gemma2-9b"))
    assert gemma.tied and mix_type("Q4_K_M", "token_embd", 0, gemma) == "Q6_K"
    from estimator.memory.gguf_quants import fitted_type

    assert fitted_type("Q4_K", 1000) == "F16"  # 1,000 is no multiple of 32 either
    assert fitted_type("Q4_K", 1024 + 32) == "Q5_0"
    assert fitted_type("Q6_K", 896) == "Q8_0"  # Qwen2.5 0.5B's d = 896 = 3.5 · 256


def test_gguf_file_format_and_tensor_bytes() -> None:
    from estimator.checkpoint.safetensors_files import TensorInfo

    assert gguf_file_format({"general.file_type": 15}) is WeightFormat.gguf_q4_k_m
    assert gguf_file_format({"general.file_type": 18}) is WeightFormat.gguf_q6_k
    assert gguf_file_format({"general.file_type": 38}) is None  # MXFP4_MOE: not a mix modelled here
    assert gguf_file_format({}) is None
    tensors = [TensorInfo("a", "Q4_K", (4096, 4096), 9_437_184), TensorInfo("b", "F32", (4096,), 16_384)]
    assert gguf_tensor_bytes(tensors) == 9_453_568


# ---- checkpoint_weight_format --------------------------------------------------------------------------------------


def config(name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((CONFIGS / name).read_text())
    return loaded


def test_checkpoint_weight_format_from_real_configs() -> None:
    assert checkpoint_weight_format(config("gpt-oss-20b.json")) is WeightFormat.mxfp4
    assert checkpoint_weight_format(config("extra/gpt-oss-120b.json")) is WeightFormat.mxfp4
    assert checkpoint_weight_format(config("deepseek-v3.json")) is WeightFormat.fp8_block
    assert checkpoint_weight_format(config("kimi-k2.json")) is WeightFormat.fp8_block
    assert checkpoint_weight_format(config("llama3-8b.json")) is None
    with pytest.raises(EstimatorError) as exc:  # AMD's quark per-channel fp8
        checkpoint_weight_format(config("extra/deepseek-v3.2-exp-ptpc.json"))
    assert "quark" in one_line(exc)


@pytest.mark.parametrize(
    ("quant", "expected"),
    [
        ({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False}, WeightFormat.gptq_int4),
        ({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm"}, WeightFormat.awq_int4),
        ({"quant_method": "fp8", "activation_scheme": "static"}, WeightFormat.fp8),
        ({"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16, "exclude_modules": ["lm_head"]},
         WeightFormat.nvfp4),
        ({"quant_method": "compressed-tensors", "ignore": ["lm_head", "re:.*mlp.gate$"],
          "config_groups": {"group_0": {"format": "nvfp4-pack-quantized"}}}, WeightFormat.nvfp4),
        ({"quant_method": "compressed-tensors", "format": "float-quantized",
          "config_groups": {"group_0": {"weights": {"num_bits": 8, "strategy": "tensor"}}}}, WeightFormat.fp8),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
          "bnb_4bit_use_double_quant": True}, WeightFormat.nf4),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"},
         WeightFormat.nf4_no_double_quant),
        ({"quant_method": "bitsandbytes", "load_in_8bit": True}, WeightFormat.int8),
    ],
)  # fmt: skip
def test_checkpoint_weight_format_per_method(quant: dict[str, object], expected: WeightFormat) -> None:
    assert checkpoint_weight_format({"quantization_config": quant}) is expected


@pytest.mark.parametrize(
    ("quant", "named"),
    [
        ({"quant_method": "gptq", "bits": 3, "group_size": 128}, "3 bits"),
        ({"quant_method": "gptq", "bits": 4, "group_size": 64}, "groups of 64"),
        ({"quant_method": "fp8", "weight_block_size": [64, 64]}, "[64, 64]"),
        ({"quant_method": "modelopt", "quant_algo": "NVFP4",
          "exclude_modules": ["lm_head", "model.layers.0.self_attn"]}, "self_attn"),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "fp4"}, "fp4"),
        ({"quant_method": "compressed-tensors", "config_groups": {"g": {"format": "pack-quantized"}}},
         "pack-quantized"),
        ({"quant_method": "hqq"}, "hqq"),
    ],
)  # fmt: skip
def test_checkpoint_weight_format_refuses_unmodelled_layouts(quant: dict[str, object], named: str) -> None:
    with pytest.raises(EstimatorError) as exc:
        checkpoint_weight_format({"quantization_config": quant})
    assert named in one_line(exc) and "--weights-dtype" in str(exc.value)


# ---- refusals and descriptions -------------------------------------------------------------------------------------


def test_refusals_in_one_line() -> None:
    with pytest.raises(EstimatorError) as exc:
        weight_bytes_per_gpu(load_spec("llama3-8b"), WeightFormat.mxfp4)
    assert "no routed experts" in one_line(exc)
    with pytest.raises(EstimatorError) as exc:
        weight_bytes_per_gpu(load_spec("llama3-8b"), WeightFormat.gguf_q4_k_m, 2)
    assert "--tp 1" in one_line(exc)
    with pytest.raises(EstimatorError) as exc:
        weight_bytes_per_gpu(load_spec("mixtral-8x7b"), WeightFormat.gguf_q4_k_m)
    assert "mixtral" in one_line(exc)
    with pytest.raises(EstimatorError) as exc:
        nvfp4_bytes(1000, 8)
    assert "multiple of 16" in one_line(exc)
    with pytest.raises(EstimatorError) as exc:
        matrix_bytes(4096, 4096, WeightFormat.gguf_q8_0)
    assert "gguf_mix_bytes" in one_line(exc)


def test_every_format_describes_itself() -> None:
    for fmt in WeightFormat:
        assert fmt.describe() and "\n" not in fmt.describe()
    assert "experts only" in WeightFormat.mxfp4.describe()

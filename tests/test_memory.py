"""Memory per GPU to serve and to fine-tune (#15): every number derived here by hand from the real config's
dimensions, independently of the code's folds over layer groups."""

from __future__ import annotations

import math

import pytest

from estimator.architecture import total_params
from estimator.errors import EstimatorError
from estimator.memory.activations import Checkpointing, activation_bytes, lora_ranks
from estimator.memory.formats import WeightFormat, awq_bytes, fp8_block_bytes, gptq_bytes, matrix_bytes, nf4_bytes
from estimator.memory.serving import (
    ServeSetup,
    budget_bytes,
    cache_bytes_per_gpu,
    longest_tokens,
    most_sequences,
    serve_memory,
)
from estimator.memory.sizes import parse_bytes
from estimator.memory.training import (
    Optimizer,
    Precision,
    TrainSetup,
    adapter_tensor_sizes,
    full_tensor_sizes,
    optimizer_state_bytes,
    train_memory,
)
from estimator.memory.weights import weight_bytes_per_gpu
from estimator.query.vocabulary import Method
from estimator.stores.targets import lora_params, resolve_targets
from estimator.zoo import load_spec

GiB = 2**30
H100 = 80 * GiB
# Llama 3 70B's config.json
L, D, F, H, K, DH, V = 80, 8192, 28672, 64, 8, 128, 128256


@pytest.fixture(scope="module")
def llama70() -> object:
    return load_spec("llama3-70b")


def per_layer_params(tp: int) -> int:
    """q, o, gate, up, down split by t; k and v keep max(1, K/t) heads; two norms whole."""
    kv_heads = max(1, K // tp)
    q_o = 2 * D * (H * DH) // tp
    k_v = 2 * D * kv_heads * DH
    return q_o + k_v + 3 * D * F // tp + 2 * D


def test_weights_per_gpu_by_hand(llama70: object) -> None:
    assert weight_bytes_per_gpu(llama70, WeightFormat.bf16) == 2 * total_params(llama70) == 141_107_412_992
    for tp in (1, 2, 4, 8):
        by_hand = 2 * (L * per_layer_params(tp) + D + 2 * V * D // tp)  # final norm whole; embedding, head 1/t
        assert weight_bytes_per_gpu(llama70, WeightFormat.bf16, tp) == by_hand
    assert weight_bytes_per_gpu(llama70, WeightFormat.bf16, 8) == 17_640_734_720


def test_quantised_matrix_bytes_by_hand() -> None:
    # GPTQ 4-bit, groups of 128, on an 8,192 x 8,192 map: packed int32 weights, int32 zeros, fp16 scales, g_idx
    assert gptq_bytes(8192, 8192) == 8192 * 8192 // 2 + (8192 // 128) * (8192 // 8) * 4 + 64 * 8192 * 2 + 8192 * 4
    assert awq_bytes(8192, 8192) == 8192 * 8192 // 2 + 64 * 1024 * 4 + 64 * 8192 * 2
    # bitsandbytes NF4 as measured on 0.50 (4096 x 1024: 2,164,804; 11008 x 4096: 23,260,996)
    assert nf4_bytes(1024, 4096) == 2_164_804
    assert nf4_bytes(4096, 11008) == 23_260_996
    assert nf4_bytes(333, 1000) == 172_880 and nf4_bytes(333, 1000, double_quant=False) == 187_380
    assert nf4_bytes(5, 7) == 1_115  # tiny: the fixed code tables dominate
    # DeepSeek-V3's fp8 q_b_proj with fp32 scales per 128 x 128 block
    assert fp8_block_bytes(1536, 24576) == 1536 * 24576 + 192 * 12 * 4
    assert matrix_bytes(1000, 333, WeightFormat.int8) == 333_000 + 4 * 333


def nf4_weights_by_hand() -> int:
    """The seven maps of each layer in NF4; embeddings, head and the 2 · 80 + 1 norms in bf16."""
    maps = [(D, H * DH), (D, K * DH), (D, K * DH), (H * DH, D), (D, F), (D, F), (F, D)]
    return L * sum(nf4_bytes(d_in, d_out) for d_in, d_out in maps) + 2 * (2 * V * D + 2 * L * D + D)


def test_qlora_weights_keep_embeddings_head_and_norms_in_bf16(llama70: object) -> None:
    nf4 = weight_bytes_per_gpu(llama70, WeightFormat.nf4)
    assert nf4 == nf4_weights_by_hand()
    assert round(nf4 / 1e9, 2) == 39.52


def test_cache_per_gpu_splits_kv_heads_and_keeps_mla_whole(llama70: object) -> None:
    assert cache_bytes_per_gpu(llama70, 100_000, ServeSetup()) == 2 * L * K * DH * 2 * 100_000
    assert cache_bytes_per_gpu(llama70, 100_000, ServeSetup(tp=8)) == 2 * L * 1 * DH * 2 * 100_000
    assert cache_bytes_per_gpu(llama70, 100_000, ServeSetup(tp=16)) == 2 * L * 1 * DH * 2 * 100_000  # copied
    # paged blocks of 16: 100,001 tokens take 6,251 blocks
    assert cache_bytes_per_gpu(llama70, 100_001, ServeSetup()) == 2 * L * K * DH * 2 * 6_251 * 16
    assert cache_bytes_per_gpu(llama70, 100_001, ServeSetup(block_tokens=0)) == 2 * L * K * DH * 2 * 100_001
    deepseek = load_spec("deepseek-v3")  # 61 layers of one 512 + 64 latent
    for tp in (1, 8):
        assert cache_bytes_per_gpu(deepseek, 100_000, ServeSetup(tp=tp)) == 61 * 576 * 2 * 100_000


def test_tensor_parallel_sizes_that_do_not_split_are_refused(llama70: object) -> None:
    with pytest.raises(
        EstimatorError, match=r"attention heads \(64\) cannot be split evenly over 3 GPUs.*1, 2, 4, 8, 16"
    ):
        cache_bytes_per_gpu(llama70, 1, ServeSetup(tp=3))
    with pytest.raises(EstimatorError, match="7 GPUs cannot share 4 KV heads evenly"):  # Qwen2.5-7B: 28 heads, 4 KV
        cache_bytes_per_gpu(load_spec("qwen2.5-7b"), 1, ServeSetup(tp=7))


def test_recurrent_state_splits_by_head() -> None:
    qwen_next = load_spec("qwen3-next-80b-a3b")
    whole = cache_bytes_per_gpu(qwen_next, 0, ServeSetup())
    assert whole == 36 * (8192 * 3 + 32 * 128 * 128) * 2 == 39_518_208  # the fixed state, K - 1 columns
    assert cache_bytes_per_gpu(qwen_next, 0, ServeSetup(tp=4)) == whole // 4


def activation_peak(tp: int, chunk: int = 8192) -> int:
    """The stated estimate: 2 bytes · (2 · C · d + C · max(3 F, 2 (q + k + v)) / t)."""
    widest = max(3 * F, 2 * (H * DH + 2 * K * DH))
    return 2 * (2 * chunk * D + chunk * widest // tp)


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
@pytest.mark.parametrize("batch", [1, 8])
def test_llama3_70b_on_h100_at_100k_by_hand(llama70: object, tp: int, batch: int) -> None:
    budget = budget_bytes(H100, 0.9)
    assert budget == int(0.9 * 80 * GiB)
    memory = serve_memory(llama70, 100_000, batch, ServeSetup(tp=tp), budget)
    weights = 2 * (L * per_layer_params(tp) + D + 2 * V * D // tp)
    cache = batch * 2 * L * max(1, K // tp) * DH * 2 * 100_000
    total = weights + cache + batch * V * 4 + activation_peak(tp)
    assert memory.total_bytes == total
    assert memory.fits == (total <= budget)
    assert memory.fits == ((tp, batch) in {(4, 1), (8, 1), (8, 8)})


def test_inverse_answers_are_the_edges_of_fitting(llama70: object) -> None:
    budget = budget_bytes(H100, 0.9)
    setup = ServeSetup(tp=4)
    longest = longest_tokens(llama70, 8, setup, budget, 10**9)
    assert serve_memory(llama70, longest, 8, setup, budget).fits
    assert not serve_memory(llama70, longest + 1, 8, setup, budget).fits
    most = most_sequences(llama70, 100_000, setup, budget)
    assert most == 5
    assert serve_memory(llama70, 100_000, most, setup, budget).fits
    assert not serve_memory(llama70, 100_000, most + 1, setup, budget).fits
    assert longest_tokens(llama70, 1, ServeSetup(), budget, 10**9) == 0  # the weights alone do not fit


def test_sizes_parse_in_both_unit_systems() -> None:
    assert (
        parse_bytes("80GiB") == 80 * GiB and parse_bytes("24 GB") == 24 * 10**9 and parse_bytes("1.5gib") == 3 * 2**29
    )
    with pytest.raises(EstimatorError, match="write a size such as 80GiB"):
        parse_bytes("eighty")


def test_optimizer_states_by_hand() -> None:
    assert optimizer_state_bytes((262_144,), Optimizer.adamw, 4) == 2 * 262_144 * 4 + 4
    assert optimizer_state_bytes((100, 1_000_000), Optimizer.sgd, 4) == 0
    assert optimizer_state_bytes((100, 1_000_000), Optimizer.sgd_momentum, 4) == 4 * 1_000_100
    # bitsandbytes' AdamW8bit as measured on 0.50: fp32 states under 4,096 elements, else uint8 + block scales + maps
    sizes = (100, 4095, 4096, 4097, 1_000_000)
    assert optimizer_state_bytes(sizes, Optimizer.adamw_8bit, 4) == 800 + 32_760 + 10_368 + 10_378 + 2_033_304


def test_lora_and_full_fine_tuning_of_llama3_70b_by_hand(llama70: object) -> None:
    targets = resolve_targets(llama70, "all-linear")
    sizes = adapter_tensor_sizes(targets, 32)
    p = lora_params(targets, 32)
    assert sum(sizes) == p == 414_187_520 and len(sizes) == L * 7 * 2
    lora = train_memory(llama70, TrainSetup(Method.lora, sizes, 4096, lora_ranks(targets, 32)))
    assert lora.frozen_weights_bytes == 141_107_412_992
    assert lora.trainable_weights_bytes == lora.gradient_bytes == 4 * p
    assert lora.optimizer_bytes == 8 * p + 4 * len(sizes) and lora.master_weights_bytes == 0
    plain = TrainSetup(Method.lora, sizes, 4096, lora_ranks(targets, 32), quantised_base=True, kbit_prepare=False)
    assert train_memory(llama70, plain).frozen_weights_bytes == nf4_weights_by_hand()
    # peft's prepare_model_for_kbit_training: embeddings, head and the 2 · 80 + 1 norms from bf16 to fp32
    unquantised = 2 * V * D + (2 * L + 1) * D
    qlora = train_memory(llama70, TrainSetup(Method.lora, sizes, 4096, lora_ranks(targets, 32), quantised_base=True))
    assert qlora.frozen_weights_bytes == nf4_weights_by_hand() + 2 * unquantised
    assert 2 * unquantised == 4_205_330_432
    full_sizes = full_tensor_sizes(llama70)
    n = 2 * V * D + L * (2 * D * H * DH + 2 * D * K * DH + 3 * D * F + 2 * D) + D  # 70,553,706,496
    assert sum(full_sizes) == n and len(full_sizes) == L * 9 + 3
    full = train_memory(llama70, TrainSetup(Method.full, full_sizes, 4096))
    assert full.trainable_weights_bytes + full.gradient_bytes + full.master_weights_bytes == 8 * n
    assert full.optimizer_bytes == 8 * n + 4 * len(full_sizes)  # the ZeRO paper's 16 bytes per parameter
    bf16 = train_memory(llama70, TrainSetup(Method.full, full_sizes, 4096, precision=Precision.bf16))
    assert bf16.optimizer_bytes == 4 * n + 4 * len(full_sizes) and bf16.master_weights_bytes == 0
    sharded = train_memory(llama70, TrainSetup(Method.full, full_sizes, 4096, gpus=8, zero=3))
    assert sharded.trainable_weights_bytes == math.ceil(2 * n / 8)
    assert sharded.optimizer_bytes == math.ceil(full.optimizer_bytes / 8)
    assert sharded.activation_bytes == full.activation_bytes  # activations are per GPU
    stage1 = train_memory(llama70, TrainSetup(Method.full, full_sizes, 4096, gpus=8, zero=1))
    assert stage1.gradient_bytes == 2 * n and stage1.master_weights_bytes == math.ceil(4 * n / 8)
    with pytest.raises(EstimatorError, match="ZeRO stage 4 does not exist"):
        TrainSetup(Method.full, full_sizes, 4096, zero=4)
    with pytest.raises(EstimatorError, match="dora on an NF4 base is not modelled; --way takes lora, dora, qlora"):
        TrainSetup(Method.dora, sizes, 4096, quantised_base=True)


def test_activations_of_llama3_70b_by_hand(llama70: object) -> None:
    t = 4096
    n = t
    core = 2 * H * DH + 2 * K * DH + 2 * K * DH + 2 * H * DH + 4 * H  # SDPA: q, k, v at K heads, out, lse
    loss = 4 * n * V + 8 * (t + 1) + 4
    rope = 4 * t * DH
    full_layer = 2 * (6 * D + 4) + 2 * D + core + 2 * D + 8 * F  # norms, shared inputs, attention, MLP
    full = activation_bytes(llama70, t, 1, None)
    assert full.saved_bytes == L * n * full_layer + 8 * n + n * (6 * D + 4) + 2 * n * D + loss + rope
    assert full.exact and full.logits_bytes == 2 * n * V
    ranks = lora_ranks(resolve_targets(llama70, "all-linear"), 32)
    adapters = 3 * 4 * (D + 32) + 4 * (H * DH + 32) + 2 * 4 * (D + 32) + 4 * (F + 32)  # fp32 input copies
    lora_layer = 2 * (4 * D + 4) + core + adapters + 6 * F
    lora = activation_bytes(llama70, t, 1, ranks)
    assert lora.saved_bytes == L * n * lora_layer - n * (4 * D + 4) + n * (4 * D + 4) + loss + rope
    checkpointed = activation_bytes(llama70, t, 1, ranks, Checkpointing.layers)
    assert checkpointed.saved_bytes == L * 2 * n * D + n * (4 * D + 4) + loss + rope
    assert checkpointed.recompute_bytes == n * lora_layer + rope


def test_recurrent_layers_refuse_activation_estimates() -> None:
    with pytest.raises(EstimatorError, match="activation memory of recurrent layers is not modelled"):
        activation_bytes(load_spec("mamba-2.8b"), 1024, 1, None)

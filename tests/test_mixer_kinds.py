"""The contract of every kind of token mixer: one example of each answers every question the folds ask
(cache rows, caps, fixed state, FLOPs width, its tensor-parallel split, its words, what its kernel saves for
backward and the facts the activation count reads), with numbers worked by hand from the published shapes; a kind
with no split or no saved bytes modelled is refused in one line, never passed through.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass

import pytest

import estimator.layout
from estimator.errors import EstimatorError
from estimator.layout import Attention, KVFormat, LayerGroup, Layout, Mixer, WindowCache
from estimator.layout.compressed import CompressedAttention
from estimator.layout.kinds import KINDS
from estimator.layout.latent import LatentAttention
from estimator.layout.recurrent import NoMixer, Parallel, RecurrentState
from estimator.memory.parallel import gpu_groups
from estimator.units import DType

BF16 = KVFormat(DType.bf16)
LLAMA3_70B = Attention(heads=64, kv_heads=8, head_dim=128)  # config.json: 64 heads, 8 KV heads, 8,192 / 64
GEMMA2_LOCAL = Attention(heads=16, kv_heads=8, head_dim=256, sliding_window=4096)  # Gemma 2 9B's local layers
DEEPSEEK_V3 = LatentAttention(heads=128, kv_lora_rank=512, rope_dim=64, nope_dim=128, v_head_dim=128)
# Mamba-2 at d_model 4,096: d_inner 8,192, 8 groups of state 128, 128 heads of 64; kernel 4
MAMBA2 = RecurrentState(label="Mamba-2", conv_channels=8192 + 2 * 8 * 128, conv_kernel=4, state_elements=128 * 64 * 128)
FALCON_H1 = Parallel(parts=(Attention(heads=32, kv_heads=8, head_dim=128), MAMBA2))
# DeepSeek-V4-Flash's (DeepseekV4Config defaults) CSA layer: 64 heads, d 512, window 128, m 4, indexer 64 × 128, top 512
V4_CSA = CompressedAttention(heads=64, head_dim=512, sliding_window=128, compress_rate=4, overlap=True, index_heads=64,
                             index_head_dim=128, index_topk=512)  # fmt: skip
EXAMPLES: tuple[Mixer, ...] = (LLAMA3_70B, GEMMA2_LOCAL, DEEPSEEK_V3, V4_CSA, MAMBA2, FALCON_H1, NoMixer())


def every_mixer_class() -> set[type]:
    """Every concrete Mixer subclass defined in estimator.layout's modules."""
    found: set[type] = set()
    for info in pkgutil.iter_modules(estimator.layout.__path__):
        module = importlib.import_module(f"estimator.layout.{info.name}")
        found |= {c for _, c in inspect.getmembers(module, inspect.isclass) if issubclass(c, Mixer) and c is not Mixer}
    return found


def test_every_kind_is_declared_once_and_has_an_example() -> None:
    assert every_mixer_class() == set(KINDS)
    assert {type(m) for m in EXAMPLES} == set(KINDS)


@pytest.mark.parametrize("mixer", EXAMPLES, ids=lambda m: m.kind)
def test_every_kind_answers_every_question(mixer: Mixer) -> None:
    for tp in (1, 2):
        shard = mixer.shard(tp)
        assert type(shard) is type(mixer)
        assert shard.bits_per_token(BF16) >= 0 and shard.fixed_bits(BF16) >= 0
    assert mixer.describe(BF16)
    assert mixer.attention_width >= 0
    assert mixer.attended_positions(4) >= 0
    assert mixer.per_head_norms("q_norm", 128) >= 0 and mixer.rope_head_dim >= 0
    assert isinstance(mixer.output_saved_by_kernel, bool)
    assert mixer.cached_attention is None or isinstance(mixer.cached_attention, Attention)


SAVES_FOR_BACKWARD = {Attention, NoMixer}  # the kinds whose activations are modelled; every other refuses


@pytest.mark.parametrize("mixer", EXAMPLES, ids=lambda m: m.kind)
def test_every_kind_says_what_it_saves_for_backward_or_refuses_in_one_line(mixer: Mixer) -> None:
    if type(mixer) in SAVES_FOR_BACKWARD:
        assert mixer.saved_bytes_per_token() >= 0
        assert isinstance(mixer.saved_bytes_measured(), bool)
        return
    refusal = (
        f"activation memory of {mixer.kind} layers is not modelled (transformers' reference kernels for them "
        "differ from the fused ones used in training); estimate a model without them"
    )
    for question in (mixer.saved_bytes_per_token, mixer.saved_bytes_measured):
        with pytest.raises(EstimatorError) as refused:
            question()
        assert str(refused.value) == refusal and "\n" not in refusal


def test_attention_by_hand() -> None:
    # 2 (K and V) · 8 heads · 128 · 2 bytes = 4,096 bytes per token and layer
    assert LLAMA3_70B.bits_per_token(BF16) == 4096 * 8
    assert LLAMA3_70B.describe(BF16) == "attention: 16 × 128 elements = 4,096 bytes per held token"
    eight = LLAMA3_70B.shard(8)  # vLLM: 64 / 8 query heads, max(1, 8 / 8) KV heads
    assert (eight.heads, eight.kv_heads) == (8, 1)
    sixteen = LLAMA3_70B.shard(16)  # 8 KV heads over 16 GPUs: each head held twice
    assert (sixteen.heads, sixteen.kv_heads) == (4, 1)
    assert GEMMA2_LOCAL.describe(BF16).endswith(", at most a window of 4,096")
    assert GEMMA2_LOCAL.cap_tokens(BF16) == 4096


def test_attention_saves_for_backward_by_hand() -> None:
    # SDPA: q 64 · 128 and output 64 · 128 (bf16), k and v at 8 KV heads of 128 (bf16), log-sum-exp 64 (fp32):
    # 2 · (8,192 + 1,024 + 1,024 + 8,192) + 4 · 64 = 36,864 + 256 = 37,120 bytes per token
    assert LLAMA3_70B.saved_bytes_per_token() == 37_120
    assert LLAMA3_70B.saved_bytes_measured()
    # Gemma 2's local layer, 16 heads and 8 KV heads of 256: 2 · (4,096 + 2,048 + 2,048 + 4,096) + 4 · 16 = 24,640;
    # a window runs other kernels than the ones measured: an estimate
    assert GEMMA2_LOCAL.saved_bytes_per_token() == 24_640
    assert not GEMMA2_LOCAL.saved_bytes_measured()
    assert NoMixer().saved_bytes_per_token() == 0 and NoMixer().saved_bytes_measured()


def test_the_facts_the_activation_count_reads_by_hand() -> None:
    qwen3_8b = Attention(heads=32, kv_heads=8, head_dim=128)  # config.json: 32 heads, 8 KV heads, head_dim 128
    # q_norm runs over each of the 32 query heads, k_norm over the 8 KV heads; a norm of d = 4,096 is not per head
    assert qwen3_8b.per_head_norms("self_attn.q_norm", 128) == 32
    assert qwen3_8b.per_head_norms("self_attn.k_norm", 128) == 8
    assert qwen3_8b.per_head_norms("input_layernorm", 4096) == 0
    assert MAMBA2.per_head_norms("norm", 128) == 0
    # RoPE's tables: d_h for attention, qk_rope_head_dim for MLA, the attention part's for Falcon-H1, none else
    assert (LLAMA3_70B.rope_head_dim, DEEPSEEK_V3.rope_head_dim, FALCON_H1.rope_head_dim) == (128, 64, 128)
    assert (MAMBA2.rope_head_dim, NoMixer().rope_head_dim) == (0, 0)
    # SDPA saves its output, which o_proj reads; no other kind's kernel is counted as saving it
    assert [m.output_saved_by_kernel for m in EXAMPLES] == [True, True, False, False, False, False, False]
    # the attention whose K and V are cached: itself, Falcon-H1's attention part, else none
    assert LLAMA3_70B.cached_attention == LLAMA3_70B and FALCON_H1.cached_attention == FALCON_H1.parts[0]
    assert Attention(heads=8, kv_heads=2, head_dim=256, stores_kv=False).cached_attention is None  # Gemma 3n's last
    assert [m.cached_attention for m in (DEEPSEEK_V3, V4_CSA, MAMBA2, NoMixer())] == [None] * 4


def test_latent_attention_by_hand() -> None:
    # the latent of 512 + the RoPE key of 64: 576 values, 1,152 bytes per token and layer, whole on every GPU
    assert DEEPSEEK_V3.bits_per_token(BF16) == 1152 * 8
    assert DEEPSEEK_V3.shard(8) == DEEPSEEK_V3
    assert DEEPSEEK_V3.describe(BF16) == "latent attention: 1 × 576 elements = 1,152 bytes per held token"


def test_compressed_attention_by_hand() -> None:
    # one entry of 512 + 128 values per 4 tokens: 1,280 bytes, 320 per token; the window w − 1 = 127 keys of 512
    w_minus_1 = KVFormat(DType.bf16, window=WindowCache.window_minus_one)
    assert V4_CSA.bits_per_token(BF16) == 320 * 8
    # T = 1,001: 127 · 512 · 2 (window) + 250 · 1,280 (entries) + 1 · 2 · 2 · 640 · 2 (tail) + 4 · 640 · (2 + 4)
    assert V4_CSA.layer_bits(1001, w_minus_1) == (130_048 + 320_000 + 5_120 + 15_360) * 8
    assert V4_CSA.layer_bits(3, w_minus_1) == (3 * 1024 + 3 * 5_120) * 8  # no window closed yet: no overlap
    assert V4_CSA.shard(8) == V4_CSA  # one K = V head and its entries serve all 64 heads: whole on every GPU
    assert V4_CSA.describe(BF16).startswith("compressed attention: one entry of 1 × 512 + 1 × 128 elements per 4")
    with pytest.raises(EstimatorError, match=r"^the attention heads \(64\) cannot be split evenly over 3 GPUs"):
        V4_CSA.shard(3)


def test_recurrent_state_by_hand() -> None:
    # conv: 10,240 channels × 3 inputs (K − 1) × 2 bytes = 61,440; state: 1,048,576 × 2 bytes = 2,097,152
    assert MAMBA2.fixed_bits(BF16) == (61_440 + 2_097_152) * 8
    assert MAMBA2.describe(BF16).endswith("2,158,592 bytes per sequence, whatever its length")
    half = MAMBA2.shard(2)
    assert (half.conv_channels, half.state_elements) == (5120, 524_288)
    assert FALCON_H1.shard(2).parts == (Attention(16, 4, 128), half)


def test_a_split_that_does_not_divide_is_one_line() -> None:
    with pytest.raises(EstimatorError, match=r"^the attention heads \(64\) cannot be split evenly over 3 GPUs"):
        LLAMA3_70B.shard(3)
    with pytest.raises(EstimatorError, match=r"^12 GPUs cannot share 8 KV heads evenly"):
        Attention(heads=48, kv_heads=8, head_dim=128).shard(12)  # 48 / 12 query heads, but 8 KV heads over 12


@dataclass(frozen=True)
class Unmodelled(Mixer):
    """A kind someone adds without saying how it splits."""

    kind = "new kind"

    def vectors(self, fmt: KVFormat) -> tuple[tuple[int, int], ...]:
        return ((2, 64),)


def test_a_kind_without_a_split_is_refused_not_passed_through() -> None:
    layout = Layout((LayerGroup(2, Unmodelled(), (), ()),), ())
    assert gpu_groups(layout, 1)[0].mixer == Unmodelled()  # one GPU holds it whole: nothing to split
    with pytest.raises(EstimatorError, match=r"^no tensor-parallel split of new kind layers is modelled; use --tp 1"):
        gpu_groups(layout, 2)


def test_a_kind_that_does_not_say_what_it_saves_is_refused_in_one_line() -> None:
    with pytest.raises(EstimatorError, match=r"^activation memory of new kind layers is not modelled \(transformers'"):
        Unmodelled().saved_bytes_per_token()
    with pytest.raises(EstimatorError, match=r"^activation memory of new kind layers is not modelled"):
        Unmodelled().saved_bytes_measured()

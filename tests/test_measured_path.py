"""The measured path finds every state a model keeps, counts each exactly, and fails in one line.

Each expected number is worked by hand from the tiny config's fields and the convention transformers
5.24's code states (a sliding layer keeps the last W − 1 tokens; MiniMax keeps a lightning state of H · d · d
per linear layer in the model's dtype; RWKV five states of hidden per layer, three of them in fp32;
RecurrentGemma an RG-LRU state of lru_width in fp32 and a convolution of hidden × (width − 1))."""

from __future__ import annotations

import pytest

from estimator.errors import EstimatorError, UnknownFamilyError
from estimator.units import DType

pytest.importorskip("peft")
pytestmark = pytest.mark.validation

BF16 = 2


def cache_of(model_type: str, tokens: int, **fields: object) -> tuple[int, int, str]:
    from estimator.validate.unknown import _cache, _hf_fields

    config = {"model_type": model_type, "vocab_size": 1000, **fields}
    return _cache(_hf_fields(UnknownFamilyError("", "config.json", model_type, config)), tokens, DType.bf16)


def test_sliding_layers_window_counter_is_bookkeeping_not_cache() -> None:
    """vaultgemma: 2 sliding layers (W = 16) and 2 full; K = 2 heads of 32. At T = 100 the sliding layers
    hold W − 1 = 15 tokens and the full ones 100: 2 (K, V) · 2 · 32 · 2 B · (2 · 15 + 2 · 100) = 58,880."""
    layers = ["sliding_attention", "full_attention"] * 2
    growing, fixed, note = cache_of(
        "vaultgemma", 100, num_hidden_layers=4, hidden_size=64, intermediate_size=128, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, sliding_window=16, layer_types=layers,
    )  # fmt: skip
    assert (growing, fixed) == (2 * 2 * 32 * BF16 * (2 * 15 + 2 * 100), 0) == (58_880, 0)
    assert "2 integer tensors (_sliding_window_tensor; 16 bytes) are bookkeeping" in note


def test_minimax_lightning_state_beside_the_layers_is_counted() -> None:
    """minimax: 2 full layers (K = 2 of d = 16) and 2 lightning layers (H = 4 heads of d = 16): the full
    layers 2 · 2 (K, V) · 2 · 16 · 2 B · 50 = 12,800 growing; the lightning states 2 · 4 · 16 · 16 · 2 B = 4,096
    fixed, kept in the cache's ``linear_cache`` beside its layers (missed before: −97% at 1 token)."""
    growing, fixed, _ = cache_of(
        "minimax", 50, num_hidden_layers=4, hidden_size=64, intermediate_size=64, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, num_local_experts=2, num_experts_per_tok=1,
        layer_types=["full_attention", "linear_attention"] * 2, block_size=8,
    )  # fmt: skip
    assert (growing, fixed) == (2 * 2 * 2 * 16 * BF16 * 50, 2 * 4 * 16 * 16 * BF16) == (12_800, 4_096)


def test_rwkv_returned_state_is_fixed_at_any_length() -> None:
    """rwkv: 3 layers of hidden 64: five states of (1, 64, 3), num, den and max in fp32, att and ffn in bf16:
    3 · 64 · 3 · 4 B + 2 · 64 · 3 · 2 B = 3,072 bytes, at 10^5 tokens (measured at 8 and 16)."""
    growing, fixed, note = cache_of(
        "rwkv", 100_000, num_hidden_layers=3, hidden_size=64, attention_hidden_size=64, intermediate_size=128,
        context_length=64,
    )  # fmt: skip
    assert (growing, fixed) == (0, 3 * 64 * 3 * 4 + 2 * 64 * 3 * BF16) == (0, 3_072)
    assert "fixed state, the same 3,072 bytes after 8 and 16 tokens" in note


def test_recurrent_gemma_state_on_its_layers_and_its_unreturned_window() -> None:
    """recurrent_gemma: blocks recurrent, recurrent, attention. Each recurrent block keeps on its modules an
    RG-LRU state (lru_width 64, fp32: 256 B) and a convolution (64 × (4 − 1), bf16: 384 B): 2 · 640 = 1,280
    fixed. The attention block's cache (K = 1 of d = 16, window 12: W − 1 = 11 tokens held) is built by the
    forward pass and not returned: 2 · 1 · 16 · 2 B · 11 = 704 growing, at T = 1,000 extrapolated from 8 and
    16 tokens by the layer's own window."""
    growing, fixed, note = cache_of(
        "recurrent_gemma", 1000, num_hidden_layers=3, hidden_size=64, lru_width=64, intermediate_size=128,
        num_attention_heads=4, num_key_value_heads=1, head_dim=16, attention_window_size=12, conv1d_width=4,
    )  # fmt: skip
    assert (growing, fixed) == (2 * 1 * 16 * BF16 * 11, 2 * (64 * 4 + 64 * 3 * BF16)) == (704, 1_280)
    assert "per token times the tokens each layer holds" in note


def test_a_float_tensor_no_rule_knows_is_refused_by_name() -> None:
    import torch

    from estimator.validate.cache_walk import UnclassifiedStateError, classify, walk

    class Odd:
        def __init__(self) -> None:
            self.layers = [type("Layer", (), {})()]
            self.layers[0].keys = torch.zeros(1, 2, 3, 4)
            self.layers[0].offset = torch.zeros(1, dtype=torch.long)
            self.mystery = [torch.zeros(5)]

    with pytest.raises(UnclassifiedStateError, match=r"not measured here \(mystery\[0\]\)"):
        classify(walk(Odd()))
    found = classify(walk(Odd())[:2])
    assert found.growing == {"layers[0].keys": 24 * 4} and found.bookkeeping == {"layers[0].offset": 8}
    packed = [("layers[0]._quantized_keys", torch.zeros(1, 2, 3, 4, dtype=torch.uint8))]
    assert classify(packed).growing == {"layers[0]._quantized_keys": 24}  # packed bytes count, not bookkeeping
    with pytest.raises(UnclassifiedStateError, match="positions"):  # 9 integers: data, not a counter
        classify([("layers[0].positions", torch.zeros(9, dtype=torch.long))])


def test_a_crash_in_the_child_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from estimator.validate import child

    crash = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    monkeypatch.setattr(child, "CHILD_COMMAND", ("-c", crash))
    with pytest.raises(EstimatorError) as error:
        child.measure_in_child({"model_type": "dory"})
    assert "killed by signal SIGSEGV" in str(error.value) and "\n" not in str(error.value)


def shrunk_and_full(model_type: str, tokens: int, **fields: object) -> tuple[tuple[int, int], tuple[int, int]]:
    import torch

    from estimator.validate.shrunk import shrunk_cache
    from estimator.validate.unknown import _fake_cache

    config = {"model_type": model_type, "vocab_size": 5000, "pad_token_id": 4999, **fields}  # the copy cuts it
    shrunk = shrunk_cache(config, tokens, torch.bfloat16)
    full = _fake_cache(config, tokens, DType.bf16)
    return shrunk[:2], full[:2]


@pytest.mark.parametrize("tokens", [5, 100])
def test_the_shrunk_copy_scales_exactly_to_the_full_model(tokens: int) -> None:
    """vaultgemma of 7 layers (5 sliding of W = 8, 2 full; K = 2 of 16) measured on a real copy of 4 layers
    (2 of each kind) and scaled per kind equals the full-size fake-tensor measurement: at T = 100,
    2 · 2 · 16 · 2 B · (5 · 7 + 2 · 100) = 30,080; at T = 5, 2 · 2 · 16 · 2 B · 7 · 5 = 4,480."""
    kinds = ["sliding_attention", "sliding_attention", "full_attention"] * 2 + ["sliding_attention"]
    shrunk, full = shrunk_and_full(
        "vaultgemma", tokens, num_hidden_layers=7, hidden_size=64, intermediate_size=128, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, sliding_window=8, layer_types=kinds,
    )  # fmt: skip
    expected = 2 * 2 * 16 * BF16 * (5 * min(tokens, 7) + 2 * tokens)
    assert shrunk == full == (expected, 0) and expected == {5: 4_480, 100: 30_080}[tokens]


def test_the_shrunk_copy_scales_fixed_states_per_kind() -> None:
    """qwen3_next of 6 layers (linear, linear, full, ...): conv and recurrent states per linear layer, keys and
    values per full layer; the real copy of 4 layers scaled up equals the full-size fake measurement."""
    shrunk, full = shrunk_and_full(
        "qwen3_next", 100, num_hidden_layers=6, hidden_size=64, intermediate_size=64, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, linear_num_key_heads=2, linear_num_value_heads=4,
        linear_key_head_dim=8, linear_value_head_dim=8, num_experts=2, num_experts_per_tok=1,
        moe_intermediate_size=32, shared_expert_intermediate_size=32, full_attention_interval=3,
    )  # fmt: skip
    assert shrunk == full and shrunk[0] == 2 * 2 * 2 * 16 * BF16 * 100 and shrunk[1] > 0


def test_routing_fake_tensors_cannot_run_is_measured_on_a_shrunk_copy() -> None:
    """jetmoe routes with ``.item()``: 4 layers, K · d = num_key_value_heads · kv_channels = 2 · 16 per K and V:
    2 · 32 · 2 B · 1,000 tokens · 4 layers = 512,000, from a real copy of 2 layers."""
    growing, fixed, note = cache_of(
        "jetmoe", 1000, num_hidden_layers=4, hidden_size=64, intermediate_size=128, num_attention_heads=4,
        num_key_value_heads=2, kv_channels=16, num_local_experts=4,
    )  # fmt: skip
    assert (growing, fixed) == (2 * 2 * 16 * BF16 * 1000 * 4, 0) == (512_000, 0)
    assert note.startswith("fake tensors cannot run its forward pass: measured with real tensors on a copy of 2")

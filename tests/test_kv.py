"""KV cache bytes: the formula by hand, and its invariants."""

from __future__ import annotations

from pathlib import Path

import pytest

from estimator.hf_config import spec_from_hf_config
from estimator.kv import (
    KVFormat,
    WindowCache,
    kv_bytes_per_token,
    kv_bytes_per_token_at,
    kv_cache_bytes,
    kv_max_cache_bytes,
)
from estimator.units import DType
from estimator.zoo import load_spec

from .conftest import CONFIGS


def test_llama3_70b_by_hand() -> None:
    spec = load_spec("llama3-70b")
    assert kv_bytes_per_token(spec, DType.bf16) == 2 * 80 * 8 * 128 * 2 == 327_680
    assert kv_cache_bytes(spec, 100_000, DType.bf16) == 32_768_000_000
    assert kv_bytes_per_token(spec, DType.fp32) == 2 * 80 * 8 * 128 * 4
    assert kv_bytes_per_token(spec, DType.fp8) == 2 * 80 * 8 * 128 * 1
    # int8 without groups: 1 byte per element; with the default groups of 64 elements, each with an
    # fp16 scale and an fp16 zero point: 8 + 32 / 64 = 8.5 bits per element.
    assert kv_bytes_per_token(spec, KVFormat(DType.int8, group_size=None)) == 163_840
    assert kv_bytes_per_token(spec, DType.int8) == 2 * 80 * 8 * (128 * 8 + 2 * 32) // 8 == 174_080


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("llama2-7b", 2 * 32 * 32 * 128 * 2),  # multi-head: K = H = 32
        ("llama3-8b", 2 * 32 * 8 * 128 * 2),  # grouped-query: K = 8
        ("qwen2.5-7b", 2 * 28 * 4 * 128 * 2),
        ("llama3.1-405b", 2 * 126 * 8 * 128 * 2),
        ("falcon-7b", 2 * 32 * 1 * 64 * 2),  # multi-query: one KV head
        ("gpt2", 2 * 12 * 12 * 64 * 2),
        ("phi3-mini", 2 * 32 * 32 * 96 * 2),
    ],
)
def test_kv_bytes_per_token_by_hand(name: str, expected: int) -> None:
    assert kv_bytes_per_token(load_spec(name), DType.bf16) == expected


def test_head_dim_is_taken_from_the_config_not_derived() -> None:
    nemo = spec_from_hf_config(CONFIGS / "extra" / "mistral-nemo-base-2407.json")
    assert kv_bytes_per_token(nemo, DType.bf16) == 2 * 40 * 8 * 128 * 2  # not 160 = 5120 / 32


@pytest.mark.parametrize(
    ("name", "per_token", "state"),
    [
        ("llama2-7b", 2 * 32 * 32 * 128 * 2, 0),
        ("llama3-70b", 2 * 80 * 8 * 128 * 2, 0),
        ("gpt2", 2 * 12 * 12 * 64 * 2, 0),
        ("deepseek-v3", 61 * (512 + 64) * 2, 0),  # the MLA latent and the shared RoPE key
        # 64 layers of a conv state (5,120 · 3) and an SSM state (5,120 · 16): the cache never grows
        ("mamba-2.8b", 0, 64 * (5_120 * 3 + 5_120 * 16) * 2),
        # 12 of 48 layers attend (2 KV heads of 256); 36 gated DeltaNet layers: conv 8,192 · 3, state 32 · 128 · 128
        ("qwen3-next-80b-a3b", 2 * 12 * 2 * 256 * 2, 36 * (8_192 * 3 + 32 * 128 * 128) * 2),
        # 10 '*' and 54 'M' in hybrid_override_pattern: conv (16,384 + 2 · 8 · 256) · 3, SSM 256 heads · 64 · 256
        ("nemotron-h-56b", 2 * 10 * 8 * 128 * 2, 54 * ((16_384 + 2 * 8 * 256) * 3 + 256 * 64 * 256) * 2),
    ],
)
def test_linear_in_tokens_without_windows_by_hand(name: str, per_token: int, state: int) -> None:
    spec = load_spec(name)
    assert spec.sliding_window is None
    for tokens in (1, 7, 1000, 100_000, 10**9):
        assert kv_cache_bytes(spec, tokens, DType.bf16) == tokens * per_token + state
    assert (kv_max_cache_bytes(spec, DType.bf16) is None) == (per_token > 0)  # a pure SSM's cache never grows


def test_sliding_window_caps_every_layer() -> None:
    spec = load_spec("phi3-mini")  # sliding_window 2047 on all 32 layers
    per_token = 2 * 32 * 32 * 96 * 2
    assert kv_cache_bytes(spec, 1000, DType.bf16) == 1000 * per_token
    assert kv_cache_bytes(spec, 2047, DType.bf16) == 2047 * per_token
    assert kv_cache_bytes(spec, 100_000, DType.bf16) == 2047 * per_token
    assert kv_max_cache_bytes(spec, DType.bf16) == 2047 * per_token
    assert kv_bytes_per_token_at(spec, 100_000, DType.bf16) == 2047 * per_token / 100_000


def test_mixed_layers_sum_per_layer(tmp_path: Path) -> None:
    """Qwen2 with use_sliding_window: the first 20 layers full, the last 8 windowed."""
    import json

    config = json.loads((CONFIGS / "qwen2.5-7b.json").read_text())
    config.update(use_sliding_window=True, sliding_window=4096, max_window_layers=20)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    spec = spec_from_hf_config(path)
    layer = 2 * 4 * 128 * 2
    assert kv_cache_bytes(spec, 10_000, DType.bf16) == layer * (20 * 10_000 + 8 * 4096)
    assert kv_max_cache_bytes(spec, DType.bf16) is None


def test_quantised_kv_bits_per_element() -> None:
    """int b with groups of G elements, each with an fp16 scale (and zero point): b + 16 (+ 16) / G bits."""
    spec = load_spec("llama3-70b")
    vectors = 2 * 80 * 8  # K and V vectors of 128 elements per token
    assert kv_bytes_per_token(spec, KVFormat(DType.int4)) == vectors * (128 * 4 + 2 * 32) // 8 == 92_160  # 4.5 bits
    assert kv_bytes_per_token(spec, KVFormat(DType.int2, 128, zero_point=False)) == vectors * (128 * 2 + 16) // 8
    assert kv_bytes_per_token(spec, KVFormat(DType.int4, group_size=None)) == vectors * 128 * 4 // 8 == 81_920
    assert kv_bytes_per_token(spec, KVFormat(DType.fp8)) == 163_840  # floating point: no groups
    assert KVFormat(DType.int4).describe() == "int4, groups of 64 with fp16 scale and zero point"


def test_alternating_and_five_to_one_windows() -> None:
    gemma2 = load_spec("gemma2-9b")  # 42 layers, even ones sliding (4096)
    layer = 2 * 8 * 256 * 2
    assert gemma2.layer_windows()[:4] == (4096, None, 4096, None)
    assert kv_cache_bytes(gemma2, 100_000, DType.bf16) == layer * (21 * 100_000 + 21 * 4096)
    gemma3 = load_spec("gemma3-1b")  # 26 layers, full attention at 5, 11, 17, 23; window 512
    assert [i for i, w in enumerate(gemma3.layer_windows()) if w is None] == [5, 11, 17, 23]
    layer = 2 * 1 * 256 * 2
    assert kv_cache_bytes(gemma3, 10_000, DType.bf16) == layer * (4 * 10_000 + 22 * 512)


def test_window_policy_w_minus_one() -> None:
    phi = load_spec("phi3-mini")
    per_token = 2 * 32 * 32 * 96 * 2
    held = KVFormat(DType.bf16, window=WindowCache.window_minus_one)
    assert kv_cache_bytes(phi, 100_000, held) == 2046 * per_token
    assert kv_cache_bytes(phi, 2046, held) == 2046 * per_token  # below the window both policies hold every token

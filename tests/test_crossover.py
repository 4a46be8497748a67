"""Crossover semantics for every cache kind: a real crossing, a fixed state that exceeds the adapter from
the first token, a cache capped below it; the reason travels with the number in the API, JSON and words,
and the tokens figure marks only a real intersection.

Hand arithmetic from the real configs:
- Qwen3-Next-80B-A3B (model_specs/qwen3-next-80b-a3b.toml): 36 gated-DeltaNet layers, each a convolution
  state of 8,192 channels × 3 inputs × 2 bytes = 49,152 and a recurrent state of 16 heads × 128 × 256 =
  524,288 elements × 2 bytes = 1,048,576: S = 36 × 1,097,728 = 39,518,208 bytes; 12 attention layers of
  2 (K, V) × 2 KV heads × 256 head_dim × 2 bytes = 2,048 bytes per token: 24,576 bytes per token.
  LoRA on q_proj (2,048 → 16 × 256 × 2 = 8,192, the query and its gate) and v_proj (2,048 → 512) in the
  12 attention layers: r × (10,240 + 2,560) × 12 = r × 153,600 parameters, 2 bytes each.
- GPT-2: 12 layers × 2 × 12 heads × 64 × 4 bytes (fp32) = 73,728 bytes per token; LoRA r = 1 on c_attn
  (768 → 2,304): 12 × 3,072 parameters × 2 bytes = 73,728 bytes.
"""

from __future__ import annotations

import json
import re

import pytest
from matplotlib.text import Text

from estimator import estimate, load_spec
from estimator.cli import main
from estimator.compare import CrossoverReason, crossover_tokens
from estimator.present.words import crossover_line

QWEN_STATE_BYTES = 36 * (8_192 * 3 * 2 + 524_288 * 2)  # 39,518,208
QWEN_KV_BYTES_PER_TOKEN = 12 * 2 * 2 * 256 * 2  # 24,576
QWEN_QV_PARAMS_PER_RANK = 12 * ((2_048 + 8_192) + (2_048 + 512))  # 153,600


def test_fixed_state_above_the_adapter_is_no_crossover() -> None:
    est = estimate(load_spec("qwen3-next-80b-a3b"), 1_000, 16, "q_proj,v_proj", methods=("kv", "lora"))
    adapter = 16 * QWEN_QV_PARAMS_PER_RANK * 2
    assert est.lora_bytes == adapter == 4_915_200
    assert est.kv_state_bytes == QWEN_STATE_BYTES == 39_518_208
    assert est.crossover_tokens is None  # no longer "1": the cache exceeds the adapter before any token
    assert est.crossover.reason is CrossoverReason.state_exceeds
    assert est.crossover.state_multiple == pytest.approx(39_518_208 / 4_915_200)  # 8.04
    assert crossover_line(est) == (
        "No crossover: the cache exceeds the adapter from the first token (its fixed state alone, 39.52 MB, is "
        "8.0x the LoRA's 4.92 MB), so the LoRA is the smaller store at any length."
    )
    (lora,) = [r for r in est.rows if r.method.value == "lora"]
    assert lora.crossover_tokens is None and lora.crossover is not None
    assert lora.crossover.reason is CrossoverReason.state_exceeds


def test_hybrid_crosses_where_the_growing_part_catches_up() -> None:
    """r = 256: A = 256 × 153,600 × 2 = 78,643,200; (A − S) / 24,576 = 39,124,992 / 24,576 = 1,592 exactly."""
    est = estimate(load_spec("qwen3-next-80b-a3b"), 1_000, 256, "q_proj,v_proj", methods=("kv", "lora"))
    assert est.lora_bytes == 256 * QWEN_QV_PARAMS_PER_RANK * 2 == 78_643_200
    assert est.crossover_tokens == (78_643_200 - QWEN_STATE_BYTES) // QWEN_KV_BYTES_PER_TOKEN == 1_592
    assert est.crossover.reason is CrossoverReason.crosses


def test_a_real_crossing_at_one_token_is_told_apart() -> None:
    """GPT-2 in fp32: one token's cache (73,728 bytes) equals the r = 1 c_attn LoRA (73,728 bytes); the
    cache at T = 0 is empty, so the two cross at 1, unlike a fixed state that exceeds the adapter."""
    est = estimate(load_spec("gpt2"), 100, 1, "c_attn", kv_dtype="fp32", methods=("kv", "lora"))
    assert est.kv_bytes_per_token_unbounded == 12 * 2 * 12 * 64 * 4 == 73_728
    assert est.lora_bytes == 12 * (768 + 2_304) * 2 == 73_728
    assert est.crossover_tokens == 1 and est.crossover.reason is CrossoverReason.crosses
    assert crossover_line(est).startswith("Crossover: the LoRA (73.73 kB) equals the KV cache at 1 token;")


def test_windows_and_pure_states_never_reach() -> None:
    phi = estimate(load_spec("phi3-mini"), 100_000, 300)  # 2,047 × 393,216 = 804,913,152 bytes at most
    assert phi.crossover_tokens is None and phi.crossover.reason is CrossoverReason.never_reaches
    assert phi.crossover.ceiling_bytes == 2_047 * 393_216
    mamba = estimate(load_spec("mamba-2.8b"), 100_000, 64)
    # 64 layers × (conv 5,120 × 3 + SSM 5,120 × 16) × 2 bytes = 64 × 97,280 × 2 = 12,451,840 bytes
    assert mamba.kv_state_bytes == 64 * (5_120 * 3 + 5_120 * 16) * 2 == 12_451_840
    assert mamba.crossover.reason is CrossoverReason.never_reaches
    assert "fixed state of 12,451,840 bytes" in crossover_line(mamba)
    small = estimate(load_spec("mamba-2.8b"), 100_000, 1)
    assert small.crossover.reason is CrossoverReason.state_exceeds
    assert crossover_tokens(small.spec, small.lora_bytes, small.kv) is None


def test_json_carries_the_reason_with_the_number(capsys: pytest.CaptureFixture[str]) -> None:
    command = "--model qwen3-next-80b-a3b --rank 16 --targets q_proj,v_proj --methods kv,lora --tokens 1k --json"
    assert main(command.split()) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["crossover_tokens"] is None
    assert data["crossover"] == {
        "tokens": None,
        "reason": "state-exceeds",
        "state_to_adapter_bytes_ratio": 39_518_208 / 4_915_200,
        "cache_ceiling_bytes": None,
        "state_bytes": 39_518_208,
    }
    lora = data["methods"][1]
    assert lora["crossover_tokens"] is None and lora["crossover_reason"] == "state-exceeds"
    assert main(["--model", "llama3-70b", "--json"]) == 0
    llama = json.loads(capsys.readouterr().out)
    assert llama["crossover"]["tokens"] == -(-828_375_040 // 327_680) == 2_528
    assert llama["crossover"]["reason"] == "crosses"


def test_tokens_figure_marks_only_an_intersection() -> None:
    from estimator.plots.tokens import bytes_per_token_vs_tokens

    est = estimate(load_spec("qwen3-next-80b-a3b"), 1_000, 16, "q_proj,v_proj", methods=("kv", "lora"))
    words = " ".join(" ".join(t.get_text() for t in bytes_per_token_vs_tokens(est).findobj(Text)).split())
    assert not re.search(r"crossover: [\d,]+ tokens", words)  # no dot's note, and the caption says why
    assert (
        "r=16: No crossover: the cache exceeds the adapter from the first token (its fixed state alone, 39.52 MB"
        in words
    )
    crossing = estimate(load_spec("qwen3-next-80b-a3b"), 1_000, 256, "q_proj,v_proj", methods=("kv", "lora"))
    fig = bytes_per_token_vs_tokens(crossing)
    assert "crossover: 1,592 tokens" in " ".join(t.get_text() for t in fig.findobj(Text))
    (marker,) = [ln for ln in fig.axes[0].get_lines() if list(ln.get_xdata()) == [1_592]]
    # the cache's bytes per token at 1,592 tokens equal the adapter's: (S + 1,592 × 24,576) / 1,592 = A / 1,592
    assert marker.get_ydata()[0] == (QWEN_STATE_BYTES + 1_592 * QWEN_KV_BYTES_PER_TOKEN) / 1_592

"""Words that neither overreach nor hide: the context-window warning on the headline (text and JSON),
capacity's values as reference points of different quantities, no context window for a model without one.

By hand: Llama 3 70B's config has max_position_embeddings = 8,192 (model_specs/llama3-70b.toml), so
100,000 tokens exceed it and 2,000 do not. Mamba 2.8B's config has no max_position_embeddings (no
position embeddings); its cache is 64 layers × (5,120 × 3 conv + 5,120 × 16 SSM) × 2 bytes = 12,451,840
bytes of state and no tokens.
"""

from __future__ import annotations

import json

import pytest

from estimator import estimate, load_spec

from .test_cli import run

WARNING = (
    "Warning: 100,000 tokens exceed Llama 3 70B's context window of 8,192 tokens; the KV figures are those of a "
    "cache that long."
)


def test_context_warning_is_on_the_headline(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--model", "llama3-70b", "--tokens", "100k")
    lines = out.splitlines()
    assert code == 0
    assert lines[1] == f"Learning 100,000 tokens (100k) of new text: bytes each way of storing it. {WARNING}"
    assert sum("context window" in line for line in lines) == 1  # not repeated as the last assumption
    code, out, _ = run(capsys, "--model", "llama3-70b", "--tokens", "100k", "--json")
    data = json.loads(out)
    assert data["warnings"] == [WARNING] and data["headline"].endswith(WARNING)
    assert list(data)[:3] == ["estimator_version", "headline", "warnings"]  # first, where a reader looks
    assert not any("context window" in line for line in data["assumptions"])
    code, out, _ = run(capsys, "--model", "llama3-70b", "--tokens", "2k", "--json")
    short = json.loads(out)
    assert (
        short["warnings"] == []
        and short["headline"] == "Learning 2,000 tokens (2k) of new text: bytes each way of storing it"
    )


def test_a_model_without_a_window_has_none(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--model", "mamba-2.8b", "--tokens", "2T", "--json")  # 2·10^12 > the stand-in 10^12
    data = json.loads(out)
    assert code == 0
    assert data["model"]["context_window_tokens"] is None
    assert data["beyond_context_window"] is False and data["warnings"] == []
    assert data["tokens_held"] is None and data["holds_text_as"] == "state"  # no tokens: a state summarises them
    assert data["kv_cache"]["state_bytes"] == 64 * (5_120 * 3 + 5_120 * 16) * 2 == 12_451_840
    est = estimate(load_spec("mamba-2.8b"), 2 * 10**12)
    assert est.context_window_tokens is None and not est.beyond_context_window
    code, out, _ = run(capsys, "compare", "--model", "mamba-2.8b,llama3-70b", "--tokens", "100k", "--json")
    mamba, llama = json.loads(out)
    assert mamba["context_window_tokens"] is None and mamba["tokens_held"] is None
    assert llama["context_window_tokens"] == 8_192 and llama["tokens_held"] == 100_000
    assert llama["holds_text_as"] == "tokens"
    hybrid = estimate(load_spec("qwen3-next-80b-a3b"), 1_000)
    assert hybrid.holds_text_as == "tokens and state"
    windowed = estimate(load_spec("mistral-7b-v0.1"), 100_000)  # every layer a 4,096-token window
    assert windowed.holds_text_as == "window" and windowed.tokens_held == 4_096


def test_capacity_speaks_of_reference_points_and_different_quantities(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "capacity", "--model", "llama3-70b", "--json")
    data = json.loads(out)
    assert code == 0
    words = " ".join(data["assumptions"])
    assert "floor" not in words.replace("no floor", "")  # Chinchilla's loss bounds no text's information
    assert "no floor: another tokenizer, or a text the model already knows, costs fewer bits" in words
    assert "Capacity and information are different quantities" in words
    assert "reference points for scale, not predictions" in words
    span = data["text_bits_per_token_range"]
    assert span["low_reference"] == pytest.approx(1.69 / 0.6931471805599453)  # 1.69 nats / ln 2 = 2.438 bits
    assert "floor" not in span
    code, out, _ = run(capsys, "capacity", "--model", "llama3-70b")
    assert "reference points 243,815 to 1,696,867 bits" in out  # 100,000 × 2.438 and 100,000 × log2 128,256

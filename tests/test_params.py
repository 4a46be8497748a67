"""Parameter counts: hand arithmetic from each real config, in total and by part, and published figures."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

import pytest

from estimator.architecture import param_breakdown, total_params
from estimator.zoo import load_all_specs, load_spec


def test_llama3_70b_by_hand() -> None:
    d, f, v, n_layers, kv_out = 8192, 28672, 128256, 80, 8 * 128
    embed = v * d  # 1,050,673,152, and the untied lm_head the same
    per_layer = (
        d * d  # q_proj
        + d * kv_out  # k_proj
        + d * kv_out  # v_proj
        + d * d  # o_proj
        + 3 * d * f  # gate, up, down
        + 2 * d  # two RMSNorm weights
    )
    assert per_layer == 855_654_400
    expected = 2 * embed + n_layers * per_layer + d  # + final norm
    assert expected == 70_553_706_496
    assert total_params(load_spec("llama3-70b")) == expected


def test_gpt2_by_hand_conv1d_biases_position_embeddings_tied_head() -> None:
    d, f, v, n_pos, n_layers = 768, 3072, 50257, 1024, 12
    per_layer = (
        (d * 3 * d + 3 * d)  # attn.c_attn, fused q, k, v with bias
        + (d * d + d)  # attn.c_proj
        + (d * f + f)  # mlp.c_fc
        + (f * d + d)  # mlp.c_proj
        + 2 * (2 * d)  # ln_1, ln_2: weight and bias
    )
    expected = v * d + n_pos * d + n_layers * per_layer + 2 * d  # wte + wpe + layers + ln_f; lm_head tied
    assert expected == 124_439_808
    assert total_params(load_spec("gpt2")) == expected


def test_falcon_7b_by_hand_multi_query_fused_qkv_one_norm() -> None:
    d, heads, head_dim, v, n_layers = 4544, 71, 64, 65024, 32
    qkv_out = (heads + 2 * 1) * head_dim  # one K and one V head: multi-query
    per_layer = d * qkv_out + d * d + 2 * d * (4 * d) + 2 * d  # qkv, dense, MLP, one LayerNorm (parallel attn)
    expected = v * d + n_layers * per_layer + 2 * d  # embeddings (tied head) + layers + ln_f
    assert expected == 6_921_720_704
    assert total_params(load_spec("falcon-7b")) == expected


def test_qwen25_7b_by_hand_qkv_biases() -> None:
    d, f, v, n_layers, kv_out = 3584, 18944, 152064, 28, 4 * 128
    per_layer = (d * d + d) + 2 * (d * kv_out + kv_out) + d * d + 3 * d * f + 2 * d  # biases on q, k, v only
    expected = 2 * v * d + n_layers * per_layer + d
    assert expected == 7_615_616_512
    spec = load_spec("qwen2.5-7b")
    assert total_params(spec) == expected
    # The model card's "Number of Parameters (Non-Embedding): 6.53B" excludes embed_tokens and lm_head.
    assert round((expected - 2 * v * d) / 1e9, 2) == 6.53


def test_phi3_mini_by_hand_fused_qkv_and_gate_up() -> None:
    d, f, v, n_layers, head_dim, heads = 3072, 8192, 32064, 32, 96, 32
    per_layer = d * (3 * heads * head_dim) + d * d + d * 2 * f + f * d + 2 * d
    expected = 2 * v * d + n_layers * per_layer + d
    assert expected == 3_821_079_552
    assert total_params(load_spec("phi3-mini")) == expected


# Parameters by part, written out from each config.json (embedding, attention, recurrent, mlp, experts, norm, lm_head).
BREAKDOWN = {
    "llama3-70b": {  # d 8,192, H·d_h 8,192, K·d_h 1,024, F 28,672, V 128,256, 80 layers, untied head
        "embedding": 128_256 * 8192,
        "attention": 80 * (2 * 8192 * 8192 + 2 * 8192 * 1024),
        "recurrent": 0,
        "mlp": 80 * 3 * 8192 * 28672,
        "experts": 0,
        "norm": (2 * 80 + 1) * 8192,
        "lm_head": 128_256 * 8192,
    },
    "mixtral-8x7b": {  # router 4,096 -> 8, 8 experts of w1, w3, w2 (4,096 <-> 14,336), 32 layers
        "embedding": 32_000 * 4096,
        "attention": 32 * (2 * 4096 * 4096 + 2 * 4096 * 1024),
        "recurrent": 0,
        "mlp": 32 * 4096 * 8,
        "experts": 32 * 8 * 3 * 4096 * 14336,
        "norm": (2 * 32 + 1) * 4096,
        "lm_head": 32_000 * 4096,
    },
    "gpt-oss-20b": {  # d 2,880, 64 heads and 8 KV heads of 64, biases, 64 sinks; 32 experts with biases; 24 layers
        "embedding": 201_088 * 2880,
        "attention": 24 * ((2880 * 4096 + 4096) + 2 * (2880 * 512 + 512) + (4096 * 2880 + 2880) + 64),
        "recurrent": 0,
        "mlp": 24 * (2880 * 32 + 32),
        "experts": 24 * 32 * ((2880 * 2 * 2880 + 2 * 2880) + (2880 * 2880 + 2880)),
        "norm": (2 * 24 + 1) * 2880,
        "lm_head": 201_088 * 2880,
    },
    "mamba-2.8b": {  # d 2,560, d_inner 5,120, N 16, conv 4, R 160, 64 layers, tied head
        "embedding": 50_280 * 2560,
        "attention": 0,
        "recurrent": 64 * ((5120 * 4 + 5120) + 5120 * 16 + 5120),  # conv1d with bias, A_log, D
        "mlp": 64 * (2560 * 10240 + 5120 * (160 + 2 * 16) + (160 * 5120 + 5120) + 5120 * 2560),
        "experts": 0,
        "norm": 64 * 2560 + 2560,
        "lm_head": 0,
    },
}


@pytest.mark.parametrize("name", BREAKDOWN)
def test_parts_by_hand(name: str) -> None:
    spec = load_spec(name)
    assert param_breakdown(spec) == BREAKDOWN[name]
    assert total_params(spec) == sum(BREAKDOWN[name].values())


@pytest.mark.parametrize("spec", load_all_specs(), ids=lambda s: s.name)
def test_experts_and_head_follow_the_config(spec) -> None:  # type: ignore[no-untyped-def]
    parts = param_breakdown(spec)
    assert (parts["experts"] > 0) == spec.is_moe
    assert (parts["lm_head"] == 0) == spec.tie_word_embeddings


@pytest.mark.parametrize("spec", [s for s in load_all_specs() if s.reported_params], ids=lambda s: s.name)
def test_agrees_with_the_publishers_figure(spec) -> None:  # type: ignore[no-untyped-def]
    """A publisher's '7.61B' must be our exact count cut to the digits it gives.

    Publishers round (Phi-3: 3.82B -> "3.8B") or truncate (Qwen2.5 7B: 7.6156B -> "7.61B"); either
    is accepted, nothing looser.
    """
    text = spec.reported_params
    scale = {"M": Decimal(10**6), "B": Decimal(10**9), "T": Decimal(10**12)}[text[-1]]
    reported = Decimal(text[:-1])
    ours = Decimal(total_params(spec)) / scale
    cut = {ours.quantize(reported, rounding=ROUND_DOWN), ours.quantize(reported, rounding=ROUND_HALF_UP)}
    assert reported in cut, f"{spec.name}: {ours} vs reported {text}"

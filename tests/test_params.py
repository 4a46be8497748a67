"""Parameter counts: hand arithmetic from each real config, parts summing to totals, published figures."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

import pytest

from estimator.architecture import linear_maps, other_tensors, param_breakdown, total_params
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


@pytest.mark.parametrize("spec", load_all_specs(), ids=lambda s: s.name)
def test_parts_sum_to_total(spec) -> None:  # type: ignore[no-untyped-def]
    parts = param_breakdown(spec)
    linears = sum(linear.params for linear in linear_maps(spec))
    others = sum(t.params for t in other_tensors(spec))
    in_attention = sum(t.params for t in other_tensors(spec) if t.group == "attention")  # gpt-oss's sinks
    assert parts["attention"] + parts["mlp"] + parts["experts"] == linears + in_attention
    assert (parts["experts"] > 0) == spec.is_moe
    assert parts["embedding"] + parts["norm"] + parts["lm_head"] + parts["recurrent"] == others - in_attention
    assert sum(parts.values()) == total_params(spec)
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

"""LoRA sizes and target selection."""

from __future__ import annotations

import pytest

from estimator.errors import EstimatorError
from estimator.stores.targets import lora_bytes, lora_params, resolve_targets
from estimator.units import DType
from estimator.zoo import load_spec


def test_llama3_70b_rank32_all_linear_by_hand() -> None:
    d, f, kv, r, n_layers = 8192, 28672, 1024, 32, 80
    per_layer = r * ((d + d) + (d + kv) + (d + kv) + (d + d) + 3 * (d + f))  # q, k, v, o, gate, up, down
    assert per_layer == 5_177_344
    targets = resolve_targets(load_spec("llama3-70b"), "all-linear")
    assert lora_params(targets, 32) == n_layers * per_layer == 414_187_520
    assert lora_bytes(targets, 32, DType.bf16) == 828_375_040
    assert lora_bytes(targets, 32, DType.fp32) == 4 * 414_187_520


# LoRA at rank 1: Σ over the targeted maps of (d_in + d_out), times the layers, from each config.json's widths
# (attention, mlp; all-linear is their sum by hand). None: a pure SSM has no attention to adapt.
RANK_ONE = [
    # d 8,192, H·d_h 8,192, K·d_h 1,024, F 28,672, 80 layers: 4,096,000 and 8,847,360
    ("llama3-70b", 80 * (2 * (8192 + 8192) + 2 * (8192 + 1024)), 80 * 3 * (8192 + 28672)),
    # Conv1D c_attn 768 -> 2,304 and c_proj; c_fc 768 -> 3,072 and c_proj; 12 layers: 55,296 and 92,160
    ("gpt2", 12 * ((768 + 2304) + (768 + 768)), 12 * 2 * (768 + 3072)),
    # fused query_key_value 4,544 -> (71 + 2) · 64, dense; 4h MLP of 18,176; 32 layers: 585,728 and 1,454,080
    ("falcon-7b", 32 * ((4544 + 73 * 64) + (4544 + 4544)), 32 * 2 * (4544 + 18176)),
    # fused qkv_proj 3,072 -> 9,216, o_proj; gate_up_proj 3,072 -> 16,384, down_proj 8,192 -> 3,072; 32 layers
    ("phi3-mini", 32 * ((3072 + 9216) + (3072 + 3072)), 32 * ((3072 + 16384) + (8192 + 3072))),
    # d 3,584, K·d_h 4 · 128 = 512, F 18,944, 28 layers: 630,784 and 1,892,352
    ("qwen2.5-7b", 28 * (2 * (3584 + 3584) + 2 * (3584 + 512)), 28 * 3 * (3584 + 18944)),
    # d 3,584, H·d_h 16 · 256 = 4,096, K·d_h 8 · 256 = 2,048, F 14,336, 42 layers: 1,118,208 and 2,257,920
    ("gemma2-9b", 42 * (2 * (3584 + 4096) + 2 * (3584 + 2048)), 42 * 3 * (3584 + 14336)),
    # router 4,096 -> 8 and 8 experts of w1, w3, w2 (4,096 <-> 14,336), 32 layers: 851,968 and 14,287,104
    ("mixtral-8x7b", 32 * (2 * (4096 + 4096) + 2 * (4096 + 1024)), 32 * ((4096 + 8) + 8 * 3 * (4096 + 14336))),
    # MLA: q_a 7,168 -> 1,536, q_b 1,536 -> 128 · 192, kv_a 7,168 -> 576, kv_b 512 -> 128 · 256, o 16,384 -> 7,168;
    # 3 dense MLPs of 18,432, 58 MoE layers of 256 + 1 shared experts of 2,048 (the router is a bare weight)
    (
        "deepseek-v3",
        61 * ((7168 + 1536) + (1536 + 24576) + (7168 + 576) + (512 + 32768) + (16384 + 7168)),
        3 * 3 * (7168 + 18432) + 58 * 257 * 3 * (7168 + 2048),
    ),
    # in_proj 2,560 -> 2 · 5,120, x_proj 5,120 -> 160 + 2 · 16, dt_proj 160 -> 5,120; peft refuses out_proj
    ("mamba-2.8b", None, 64 * ((2560 + 10240) + (5120 + 192) + (160 + 5120))),
]


@pytest.mark.parametrize(("name", "attention", "mlp"), RANK_ONE, ids=[row[0] for row in RANK_ONE])
def test_rank_one_by_hand_from_the_config(name: str, attention: int | None, mlp: int) -> None:
    spec = load_spec(name)
    if attention is None:  # a pure SSM: refused in one line
        with pytest.raises(EstimatorError, match="has no attention maps to adapt"):
            resolve_targets(spec, "attention")
    else:
        assert lora_params(resolve_targets(spec, "attention"), 1) == attention
    assert lora_params(resolve_targets(spec, "mlp"), 1) == mlp
    every = (attention or 0) + mlp
    assert lora_params(resolve_targets(spec, "all-linear"), 1) == every
    assert lora_params(resolve_targets(spec, "all-linear"), 1000) == 1000 * every


def test_presets_and_lists_select_modules() -> None:
    spec = load_spec("llama3-8b")
    assert resolve_targets(spec, "qv").module_names == ("self_attn.q_proj", "self_attn.v_proj")
    assert resolve_targets(spec, "q,v").module_names == ("self_attn.q_proj", "self_attn.v_proj")
    assert resolve_targets(spec, "attn").module_names == resolve_targets(spec, "q,k,v,o").module_names
    assert resolve_targets(spec, "mlp").module_names == ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
    assert resolve_targets(spec, "q_proj, down_proj").module_names == ("self_attn.q_proj", "mlp.down_proj")
    # Llama 3 8B qv at r = 8: 32 layers × 8 × ((4096 + 4096) + (4096 + 1024)).
    assert lora_params(resolve_targets(spec, "qv"), 8) == 32 * 8 * (8192 + 5120) == 3_407_872


def test_fused_maps_are_adapted_whole_or_not_at_all() -> None:
    phi = load_spec("phi3-mini")
    assert resolve_targets(phi, "qkv").module_names == ("self_attn.qkv_proj",)
    assert resolve_targets(phi, "q,k,v").module_names == ("self_attn.qkv_proj",)
    assert resolve_targets(phi, "gate,up").module_names == ("mlp.gate_up_proj",)
    with pytest.raises(EstimatorError, match="qkv_proj"):
        resolve_targets(phi, "qv")
    with pytest.raises(EstimatorError, match="add k"):
        resolve_targets(phi, "q,v")
    with pytest.raises(EstimatorError, match="gate_up_proj"):
        resolve_targets(phi, "gate")


def test_gpt2_conv1d_names() -> None:
    gpt2 = load_spec("gpt2")
    assert resolve_targets(gpt2, "c_proj").module_names == ("attn.c_proj", "mlp.c_proj")  # as peft matches
    assert resolve_targets(gpt2, "attn.c_proj").module_names == ("attn.c_proj",)
    assert resolve_targets(gpt2, "all-linear").module_names == (
        "attn.c_attn",
        "attn.c_proj",
        "mlp.c_fc",
        "mlp.c_proj",
    )
    # r = 4: 12 layers × 4 × ((768 + 2304) + (768 + 768) + (768 + 3072) + (3072 + 768))
    assert lora_params(resolve_targets(gpt2, "all-linear"), 4) == 12 * 4 * 12_288
    with pytest.raises(EstimatorError, match="no adaptable gate"):
        resolve_targets(gpt2, "gate")


@pytest.mark.parametrize("text", ["foo", "q,foo", "", " , "])
def test_unknown_targets_list_the_valid_ones(text: str) -> None:
    with pytest.raises(EstimatorError) as info:
        resolve_targets(load_spec("llama3-70b"), text)
    assert "all-linear" in str(info.value)


def test_smallest_full_rank() -> None:
    targets = resolve_targets(load_spec("llama3-70b"), "all-linear")
    assert targets.smallest_full_rank == 1024
    assert targets.narrowest() == ("k_proj", "v_proj")
    assert resolve_targets(load_spec("llama3-70b"), "mlp").smallest_full_rank == 8192

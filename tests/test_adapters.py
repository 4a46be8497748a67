"""LoRA sizes and target selection."""

from __future__ import annotations

import pytest

from estimator.errors import EstimatorError
from estimator.specs import ModelSpec
from estimator.stores.targets import lora_bytes, lora_params, resolve_targets
from estimator.units import DType
from estimator.zoo import load_all_specs, load_spec


def test_llama3_70b_rank32_all_linear_by_hand() -> None:
    d, f, kv, r, n_layers = 8192, 28672, 1024, 32, 80
    per_layer = r * ((d + d) + (d + kv) + (d + kv) + (d + d) + 3 * (d + f))  # q, k, v, o, gate, up, down
    assert per_layer == 5_177_344
    targets = resolve_targets(load_spec("llama3-70b"), "all-linear")
    assert lora_params(targets, 32) == n_layers * per_layer == 414_187_520
    assert lora_bytes(targets, 32, DType.bf16) == 828_375_040
    assert lora_bytes(targets, 32, DType.fp32) == 4 * 414_187_520


@pytest.mark.parametrize("spec", load_all_specs(), ids=lambda s: s.name)
@pytest.mark.parametrize("preset", ["all-linear", "attention", "mlp"])
def test_linear_in_rank(spec: ModelSpec, preset: str) -> None:
    if preset == "attention" and not spec.num_attention_heads:  # a pure SSM: refused in one line
        with pytest.raises(EstimatorError, match="has no attention maps to adapt"):
            resolve_targets(spec, preset)
        return
    targets = resolve_targets(spec, preset)
    one = lora_params(targets, 1)
    assert one > 0
    for rank in (2, 8, 32, 1000):
        assert lora_params(targets, rank) == rank * one


@pytest.mark.parametrize("spec", load_all_specs(), ids=lambda s: s.name)
def test_attention_plus_mlp_is_all_linear(spec: ModelSpec) -> None:
    def total(preset: str) -> int:
        return lora_params(resolve_targets(spec, preset), 16)

    attention = total("attention") if spec.num_attention_heads else 0  # a pure SSM has none
    assert attention + total("mlp") == total("all-linear")


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

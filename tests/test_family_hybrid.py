"""Hybrid Mamba/attention families (jamba, bamba, granitemoehybrid, nemotron_h, falcon_h1, zamba2): parameters
and cache by hand from real configs, then against transformers and peft (validation-marked)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from estimator.architecture import total_params
from estimator.hf_config import spec_from_hf_config
from estimator.kv import kv_bytes_per_token, kv_cache_bytes, kv_state_bytes
from estimator.layout import ConvCache, ExpertLayout, KVFormat
from estimator.stores.targets import lora_params, resolve_targets
from estimator.units import DType

from .conftest import CONFIGS

EXTRA = CONFIGS / "extra"
NEMOTRON_56B = EXTRA / "nemotron-h-56b-base-8k.json"
NEMOTRON_NANO = EXTRA / "nemotron-3-nano-30b-a3b.json"
REAL = [NEMOTRON_56B, NEMOTRON_NANO]
TRANSFORMERS_FORM = KVFormat(DType.bf16, conv=ConvCache.kernel, state_dtype=DType.fp32)


def _mamba2(d: int, heads: int, head_dim: int, groups: int, state: int, kernel: int) -> int:
    """One Mamba-2 mixer: in_proj, conv1d weight and bias, dt_bias, A_log, D, gated norm, out_proj."""
    inner = heads * head_dim
    conv = inner + 2 * groups * state
    return d * (inner + conv + heads) + conv * kernel + conv + 3 * heads + inner + inner * d


def test_nemotron_h_56b_params_by_hand() -> None:
    d, v = 8192, 131072
    pattern = json.loads(NEMOTRON_56B.read_text())["hybrid_override_pattern"]
    mamba, attention, mlp = pattern.count("M"), pattern.count("*"), pattern.count("-")
    assert (mamba, attention, mlp) == (54, 10, 54)
    # Mamba-2: 256 heads of 64 (d_inner 16,384), 8 groups, state 256: conv_dim 16,384 + 2·8·256 = 20,480
    per_mamba = _mamba2(d, 256, 64, 8, 256, 4) + d  # + the layer's norm
    assert per_mamba == d * 37_120 + 20_480 * 5 + 768 + 16_384 + 16_384 * d + d
    per_attention = d * 64 * 128 + 2 * d * 8 * 128 + 64 * 128 * d + d  # q, k, v (8 KV heads of 128), o, norm
    per_mlp = 2 * d * 32768 + d  # ungated up and down, norm
    expected = 2 * v * d + mamba * per_mamba + attention * per_attention + mlp * per_mlp + d
    assert expected == 56_324_350_464
    assert total_params(spec_from_hf_config(NEMOTRON_56B)) == expected


def test_nemotron_h_56b_cache_by_hand() -> None:
    spec = spec_from_hf_config(NEMOTRON_56B)
    assert kv_bytes_per_token(spec, DType.bf16) == 10 * 2 * 8 * 128 * 2  # 40,960: the 10 attention layers
    conv, state = 20_480, 256 * 64 * 256  # channels; H · P · N
    assert kv_state_bytes(spec, DType.bf16) == 54 * (conv * 3 * 2 + state * 2) == 459_620_352  # K-1, bf16
    assert kv_state_bytes(spec, TRANSFORMERS_FORM) == 54 * (conv * 4 * 2 + state * 4) == 914_817_024  # K, fp32
    for tokens in (1, 1_000, 100_000):
        assert kv_cache_bytes(spec, tokens, DType.bf16) == 40_960 * tokens + 459_620_352


def test_nemotron_3_nano_params_by_hand_ungated_experts_and_shared_expert() -> None:
    d, v, experts, width, shared = 2688, 131072, 128, 1856, 3712
    per_mamba = _mamba2(d, 64, 64, 8, 128, 4) + d
    per_attention = d * 32 * 128 + 2 * d * 2 * 128 + 32 * 128 * d + d  # 32 heads, 2 KV heads of 128
    per_moe = experts * d + experts * 2 * d * width + 2 * d * shared + d  # router, up and down experts, shared
    expected = 2 * v * d + 23 * per_mamba + 6 * per_attention + 23 * per_moe + d
    assert expected == 31_577_937_344
    spec = spec_from_hf_config(NEMOTRON_NANO)
    assert total_params(spec) == expected
    assert kv_bytes_per_token(spec, DType.bf16) == 6 * 2 * 2 * 128 * 2
    assert kv_state_bytes(spec, DType.bf16) == 23 * ((64 * 64 + 2 * 8 * 128) * 3 * 2 + 64 * 64 * 128 * 2)


def test_nemotron_h_lora_leaves_out_proj_as_peft_does() -> None:
    """peft refuses LoRA on Mamba's out_proj for nemotron_h: all-linear = in_proj, q, k, v, o, up, down."""
    spec = spec_from_hf_config(NEMOTRON_56B)
    d, r = 8192, 32
    per_mamba = d + 37_120  # in_proj only
    per_attention = 2 * (d + 8192) + 2 * (d + 1024)
    per_mlp = 2 * (d + 32768)
    expected = r * (54 * per_mamba + 10 * per_attention + 54 * per_mlp)
    assert lora_params(resolve_targets(spec, "all-linear"), r) == expected == 236_240_896


# Small configs of each family's code paths (not real models): checked against transformers only.
SYNTHETIC: dict[str, dict[str, Any]] = {
    "jamba": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 8, "num_attention_heads": 8,
              "num_key_value_heads": 2, "attn_layer_period": 4, "attn_layer_offset": 2, "num_experts": 4,
              "mamba_dt_rank": "auto", "vocab_size": 1000},
    "bamba": {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 8,
              "num_key_value_heads": 2, "attn_layer_indices": [2], "mamba_n_heads": 16, "mamba_n_groups": 2,
              "mamba_d_state": 32, "vocab_size": 1000},
    "granitemoehybrid": {"hidden_size": 128, "intermediate_size": 64, "shared_intermediate_size": 256,
                         "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2,
                         "layer_types": ["mamba", "attention", "mamba", "mamba"], "num_local_experts": 4,
                         "mamba_n_heads": 8, "mamba_d_head": 32, "mamba_d_state": 32, "vocab_size": 1000},
    "falcon_h1": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 3, "num_attention_heads": 4,
                  "num_key_value_heads": 2, "head_dim": 64, "mamba_d_ssm": 192, "mamba_n_heads": 6,
                  "mamba_d_state": 32, "mamba_rms_norm": True, "vocab_size": 1000},
    "zamba2": {"hidden_size": 64, "num_hidden_layers": 7, "num_attention_heads": 4, "intermediate_size": 128,
               "layers_block_type": ["mamba", "hybrid", "mamba", "hybrid", "mamba", "hybrid", "mamba"],
               "n_mamba_heads": 4, "mamba_d_state": 16, "num_mem_blocks": 2, "use_shared_attention_adapter": True,
               "adapter_rank": 8, "vocab_size": 100},
}  # fmt: skip


def _write(tmp_path: Path, model_type: str) -> Path:
    path = tmp_path / f"{model_type}-synthetic.json"
    path.write_text(json.dumps({"model_type": model_type, **SYNTHETIC[model_type]}))
    return path


@pytest.mark.parametrize("model_type", sorted(SYNTHETIC))
def test_every_hybrid_reads_and_round_trips(tmp_path: Path, model_type: str) -> None:
    from estimator.families import family
    from estimator.validate.hf import twin_spec

    spec = spec_from_hf_config(_write(tmp_path, model_type))
    assert family(model_type).to_config(spec)  # the inverse builds a config
    twin, _ = twin_spec(spec, 64)
    assert twin.hidden_size <= 64 and total_params(twin) < total_params(spec)


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("model_type", sorted(SYNTHETIC))
def test_synthetic_hybrids_equal_transformers_and_peft(tmp_path: Path, model_type: str) -> None:
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    from estimator.validate import measure

    spec = spec_from_hf_config(_write(tmp_path, model_type))
    model = measure.build_model(spec)
    assert measure.count_params(model) == total_params(spec)
    experts = ExpertLayout.fused if spec.is_moe else ExpertLayout.per_expert
    for preset in ("all-linear", "attention"):
        targets = resolve_targets(spec, preset, experts)
        with torch.device("meta"):
            lora = peft.get_peft_model(model, peft.LoraConfig(r=8, target_modules=list(targets.module_names)))
        assert sum(p.numel() for p in lora.parameters() if p.requires_grad) == lora_params(targets, 8), preset
        model = lora.unload()
    if model_type != "jamba":  # transformers' Mamba-1 scan loops over tokens in Python: slow beyond a few
        measured = measure.cache_bytes(spec, [7, 300], DType.bf16)
        for tokens, (growing, fixed) in measured.items():
            assert fixed == kv_state_bytes(spec, TRANSFORMERS_FORM)
            assert growing + fixed == kv_cache_bytes(spec, tokens, TRANSFORMERS_FORM)


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("path", REAL, ids=lambda p: p.stem)
def test_real_hybrids_equal_transformers(path: Path) -> None:
    pytest.importorskip("torch")
    from estimator.validate import measure
    from estimator.validate.checks import kv_checks

    spec = spec_from_hf_config(path)
    assert measure.count_params(measure.build_model(spec)) == total_params(spec)
    checks, _ = kv_checks(spec, DType.bf16)
    assert [c.quantity for c in checks if c.status == "differs"] == []


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("path", REAL, ids=lambda p: p.stem)
def test_real_hybrids_validate(path: Path) -> None:
    pytest.importorskip("torch")
    from estimator.query import Query
    from estimator.validate.checks import validate

    result = validate(Query(spec_from_hf_config(path), rank=8))
    assert [c.quantity for c in result.checks if c.status == "differs"] == []

"""Family longcat_flash (Meituan LongCat-Flash): two MLA sublayers per layer, a shortcut MoE with zero experts.

The config class's own defaults (shrunk) and a second shape are compared with transformers and peft in
tests/test_config_defaults.py and tests/test_family_defaults_kv.py (parameters, LoRA r=8 all-linear, the cache after
a real forward pass: its routing reads expert indices with .item(), which fake tensors cannot run). Here: counts by
hand from the formulas on LongcatFlashConfig's own defaults (the LongCat-Flash-Chat shape its docstring names; no
verbatim public config.json was found, so none is used as one) and on a small config, the num_hidden_layers
spelling, and the refusals.

Conventions: parameters as transformers 5.24 builds them, the zero experts' never-read gate_up rows included; LoRA
as peft 0.21 converts the fused experts (gate_up at 2r over E + Z experts, down at r over E, the router at r; the
dense MLPs named gate/up/down lose their adapters); the cache is MLA's latent, kv_lora_rank + qk_rope_head_dim per
token in each of the 2 × num_layers attention sublayers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from estimator.architecture import active_params, total_params
from estimator.errors import EstimatorError
from estimator.hf_config import spec_from_hf_config
from estimator.kv import kv_bytes_per_token
from estimator.layout import ExpertLayout
from estimator.stores.targets import lora_params, resolve_targets
from estimator.units import DType

# d 64, 2 layers (4 MLA sublayers), V 1,000, H 4, q rank 48, kv rank 32, nope 16, rope 8 (= head_dim), v 16;
# dense MLPs of 96; 8 experts of 48 and 4 zero experts, top 2.
LONGCAT_SMALL: dict[str, Any] = {
    "model_type": "longcat_flash", "hidden_size": 64, "num_layers": 2, "num_attention_heads": 4, "vocab_size": 1000,
    "ffn_hidden_size": 96, "q_lora_rank": 48, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8,
    "head_dim": 8, "v_head_dim": 16, "n_routed_experts": 8, "zero_expert_num": 4, "moe_topk": 2,
    "expert_ffn_hidden_size": 48,
}  # fmt: skip


def written(tmp_path: Path, config: dict[str, Any]) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def _mla(d: int, h: int, q: int, kv: int, nope: int, rope: int, v: int) -> int:
    """q_a, q_b, kv_a, kv_b, o and the q and kv latent norms of one attention sublayer."""
    return d * q + q * h * (nope + rope) + d * (kv + rope) + kv * h * (nope + v) + h * v * d + q + kv


def test_longcat_flash_params_and_cache_by_hand_on_the_class_defaults(tmp_path: Path) -> None:
    """LongcatFlashConfig's defaults: 28 layers, d 6,144, V 131,072, F 12,288, 512 experts of 2,048, 256 zero."""
    spec = spec_from_hf_config(written(tmp_path, {"model_type": "longcat_flash"}))
    d, f, e, z, fe = 6144, 12288, 512, 256, 2048
    attention = _mla(d, 64, 1536, 512, 128, 64, 128)
    assert attention == 90_572_800
    sublayers = 2 * (attention + 3 * d * f + 2 * d)  # two MLA, two dense MLPs, four norms
    moe = d * (e + z) + (e + z) * 2 * fe * d + e * d * fe  # router, gate_up over E + Z, down over E
    expected = 28 * (sublayers + moe) + 2 * 131072 * d + d
    assert total_params(spec) == expected == 741_053_585_408  # transformers' parameters() on meta alike
    dead = 28 * z * 2 * fe * d  # gate_up rows of the zero experts: allocated by transformers, never read
    assert expected - dead == 560_664_958_976  # the checkpoint's weights: the published "560B"
    assert kv_bytes_per_token(spec, DType.bf16) == 56 * (512 + 64) * 2  # 2 × 28 sublayers of latent


def test_longcat_flash_small_params_lora_and_active_by_hand(tmp_path: Path) -> None:
    spec = spec_from_hf_config(written(tmp_path, LONGCAT_SMALL))
    d = 64
    attention = _mla(d, 4, 48, 32, 16, 8, 16)
    moe = d * 12 + 12 * 2 * 48 * d + 8 * d * 48
    expected = 2 * (2 * (attention + 3 * d * 96 + 2 * d) + moe) + 2 * 1000 * d + d
    assert total_params(spec) == expected == 474_496
    # the most a token passes through: top 2 real experts; never the other 6, nor the zero experts' gate_up rows
    assert active_params(spec) == expected - 2 * (6 * 3 * d * 48 + 4 * 2 * d * 48)
    attention_lora = (d + 48) + (48 + 96) + (d + 40) + (32 + 128) + (64 + d)
    experts_lora = 12 * 2 * (d + 96) + 8 * (48 + d) + (d + 12)  # gate_up at 2r, down, router (r = 1 here)
    targets = resolve_targets(spec, "all-linear", ExpertLayout.fused)
    assert lora_params(targets, 8) == 8 * 2 * (2 * attention_lora + experts_lora) == 97_728
    assert kv_bytes_per_token(spec, DType.bf16) == 4 * (32 + 8) * 2


def test_longcat_flash_reads_num_hidden_layers_as_its_setter_does(tmp_path: Path) -> None:
    """num_hidden_layers is LongcatFlashConfig's property, 2 × num_layers; given alone, its setter halves it."""
    plain = spec_from_hf_config(written(tmp_path / "a", LONGCAT_SMALL))
    config = {k: v for k, v in LONGCAT_SMALL.items() if k != "num_layers"}
    halved = spec_from_hf_config(written(tmp_path / "b", {**config, "num_hidden_layers": 4}))
    both = spec_from_hf_config(written(tmp_path / "c", {**LONGCAT_SMALL, "num_hidden_layers": 4}))
    own = {"name", "source", "notes"}
    assert halved.to_dict(own) == both.to_dict(own) == plain.to_dict(own)
    assert plain.num_hidden_layers == 4 and total_params(halved) == total_params(plain)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"head_dim": 16}, "head_dim"),
        ({"num_key_value_heads": 2}, "num_key_value_heads"),
        ({"qk_head_dim": 32}, "qk_head_dim"),
        ({"router_bias": True}, "router_bias"),
        ({"num_hidden_layers": 5}, "num_hidden_layers"),
        ({"num_hidden_layers": 6}, "num_hidden_layers"),
        ({"q_lora_rank": None}, "q_lora_rank"),
        ({"sliding_window": 16}, "sliding_window"),
        ({"zero_expert_num": -1}, "zero_expert_num"),
    ],
    ids=[
        "rope-width",
        "kv-heads",
        "qk-head-dim",
        "router-bias",
        "odd-layers",
        "layers-disagree",
        "null-q-rank",
        "window",
        "negative-zero-experts",
    ],
)
def test_longcat_flash_refuses_what_it_does_not_model(tmp_path: Path, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(EstimatorError, match=field) as error:
        spec_from_hf_config(written(tmp_path, {**LONGCAT_SMALL, **changes}))
    assert "\n" not in str(error.value)

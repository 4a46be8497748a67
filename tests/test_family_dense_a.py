"""OLMo 2 and 3, Phi, StarCoder2, SmolLM3, EXAONE 4.0 and StableLM: counts and caches by hand from the real
configs, what each reader applies, and (with torch) the real transformers and peft models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from estimator.architecture import total_params
from estimator.errors import EstimatorError
from estimator.hf_config import spec_from_hf_config
from estimator.kv import KVFormat, WindowCache, kv_bytes_per_token, kv_cache_bytes
from estimator.query import Query
from estimator.specs import ModelSpec
from estimator.stores.targets import lora_params, resolve_targets
from estimator.units import DType

from .conftest import CONFIGS

EXTRA = CONFIGS / "extra"
MINE = {
    "olmo-2-1124-13b": "olmo2",
    "olmo-3-1025-7b": "olmo3",
    "phi-2": "phi",
    "starcoder2-3b": "starcoder2",
    "smollm3-3b": "smollm3",
    "exaone-4.0-1.2b": "exaone4",
    "stablelm-2-1_6b": "stablelm",
    "stablelm-2-12b": "stablelm",
}
W_MINUS_ONE = KVFormat(DType.bf16, window=WindowCache.window_minus_one)


def spec(name: str) -> ModelSpec:
    return spec_from_hf_config(EXTRA / f"{name}.json")


def edited(tmp_path: Path, name: str, **changes: Any) -> Path:
    """A copy of a real config with some keys changed (None: removed), for the readers' rules."""
    config = json.loads((EXTRA / f"{name}.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(config))
    return path


def lora_32(name: str) -> int:
    return lora_params(resolve_targets(spec(name), "all-linear"), 32)


def test_the_configs_are_read_as_their_model_types() -> None:
    for name, model_type in MINE.items():
        assert spec(name).model_type == model_type, name


# ---------------------------------------------------------------- OLMo 2 and OLMo 3


def test_olmo2_13b_by_hand_whole_width_qk_norms_and_post_norms() -> None:
    d, f, v, n = 5120, 13824, 100352, 40  # 40 heads and 40 KV heads of 128: every projection is d wide
    per_layer = (
        4 * d * d  # q_proj, k_proj, v_proj, o_proj
        + 3 * d * f  # gate, up, down
        + d + d  # q_norm over all 40 · 128 outputs, k_norm over all 40 · 128
        + 2 * d  # post_attention_layernorm, post_feedforward_layernorm
    )  # fmt: skip
    expected = n * per_layer + 2 * v * d + d  # untied embedding and head, final norm
    assert expected == 13_716_198_400
    # allenai's model.safetensors.index.json of OLMo-2-1124-13B: total_size 54,864,793,600 bytes of float32.
    assert 4 * expected == 54_864_793_600
    assert total_params(spec("olmo-2-1124-13b")) == expected
    per_token = 2 * n * 40 * 128 * 2
    assert kv_bytes_per_token(spec("olmo-2-1124-13b"), DType.bf16) == per_token == 819_200
    assert kv_cache_bytes(spec("olmo-2-1124-13b"), 100_000, DType.bf16) == 81_920_000_000
    # LoRA r = 32 on the 7 maps of 40 layers: r · Σ (d_in + d_out).
    assert lora_32("olmo-2-1124-13b") == 32 * n * (4 * (d + d) + 2 * (d + f) + (f + d)) == 125_173_760


def test_olmo3_7b_by_hand_three_sliding_layers_to_one_full() -> None:
    d, f, v, n = 4096, 11008, 100278, 32
    per_layer = 4 * d * d + 3 * d * f + 2 * d + 2 * d  # maps, q_norm and k_norm (d each), two post-norms
    expected = n * per_layer + 2 * v * d + d
    assert expected == 7_298_011_136
    olmo3 = spec("olmo-3-1025-7b")
    assert total_params(olmo3) == expected
    assert olmo3.layer_windows().count(4096) == 24 and olmo3.layer_windows().count(None) == 8
    layer = 2 * 32 * 128 * 2  # 16,384 bytes per token and layer
    assert kv_cache_bytes(olmo3, 1, DType.bf16) == n * layer == 524_288
    assert kv_cache_bytes(olmo3, 1_000, DType.bf16) == 1_000 * n * layer == 524_288_000
    # Beyond the window: 8 full layers hold every token, 24 sliding layers w (w − 1 in transformers).
    assert kv_cache_bytes(olmo3, 100_000, DType.bf16) == 8 * layer * 100_000 + 24 * layer * 4096 == 14_717_812_736
    assert kv_cache_bytes(olmo3, 100_000, W_MINUS_ONE) == 8 * layer * 100_000 + 24 * layer * 4095
    assert lora_32("olmo-3-1025-7b") == 32 * n * (4 * 2 * d + 2 * (d + f) + (f + d)) == 79_953_920


def test_olmo3_default_layer_types_and_null_window(tmp_path: Path) -> None:
    defaulted = spec_from_hf_config(edited(tmp_path, "olmo-3-1025-7b", layer_types=None, sliding_window=None))
    assert defaulted.layer_types == spec("olmo-3-1025-7b").layer_types  # every 4th full, window 4,096
    assert any("no layer_types" in note for note in defaulted.notes)
    assert any("no sliding_window" in note for note in defaulted.notes)
    null_window = edited(tmp_path, "olmo-3-1025-7b", layer_types=None)
    config = json.loads(null_window.read_text()) | {"sliding_window": None}
    null_window.write_text(json.dumps(config))
    with pytest.raises(EstimatorError, match="sliding_window is null"):
        spec_from_hf_config(null_window)


# ---------------------------------------------------------------- Phi


def test_phi2_by_hand_biases_everywhere_one_layernorm_and_a_head_bias() -> None:
    d, f, v, n = 2560, 10240, 51200, 32  # 32 heads of 80, K = H
    per_layer = (
        4 * (d * d + d)  # q_proj, k_proj, v_proj, dense, with biases
        + (d * f + f) + (f * d + d)  # fc1, fc2 with biases
        + 2 * d  # input_layernorm: weight and bias
    )  # fmt: skip
    expected = n * per_layer + 2 * v * d + v + 2 * d  # embedding, lm_head weight and bias (V), final_layernorm
    assert expected == 2_779_683_840
    phi2 = spec("phi-2")
    assert total_params(phi2) == expected
    assert kv_bytes_per_token(phi2, DType.bf16) == 2 * n * 32 * 80 * 2 == 327_680
    assert kv_cache_bytes(phi2, 100_000, DType.bf16) == 32_768_000_000
    assert lora_32("phi-2") == 32 * n * (4 * 2 * d + 2 * (d + f)) == 47_185_920


def test_phi_qk_layernorm_and_tied_head_keep_the_head_bias(tmp_path: Path) -> None:
    d, v, n, heads = 2560, 51200, 32, 32
    base = total_params(spec("phi-2"))
    normed = spec_from_hf_config(edited(tmp_path, "phi-2", qk_layernorm=True))
    assert total_params(normed) == base + n * 2 * 2 * (d // heads)  # q and k LayerNorms of d / H, weight and bias
    tied = spec_from_hf_config(edited(tmp_path, "phi-2", tie_word_embeddings=True))
    assert total_params(tied) == base - v * d  # the head's weight is the embedding; its bias of V stays


def test_phi_rejects_a_qk_layernorm_that_is_no_flag(tmp_path: Path) -> None:
    with pytest.raises(EstimatorError, match="qk_layernorm"):
        spec_from_hf_config(edited(tmp_path, "phi-2", qk_layernorm="yes"))


# ---------------------------------------------------------------- StarCoder2


def test_starcoder2_3b_by_hand_tied_by_default_window_on_every_layer() -> None:
    d, f, v, n, kv = 3072, 12288, 49152, 30, 2 * 128  # 24 heads of 128, 2 KV heads
    per_layer = (
        (d * d + d) + 2 * (d * kv + kv) + (d * d + d)  # q, k, v, o with use_bias
        + (d * f + f) + (f * d + d)  # c_fc, c_proj with biases
        + 2 * 2 * d  # input_layernorm, post_attention_layernorm: weight and bias
    )  # fmt: skip
    expected = n * per_layer + v * d + 2 * d  # config.json omits tie_word_embeddings: tied (Starcoder2Config)
    assert expected == 3_030_371_328
    starcoder = spec("starcoder2-3b")
    assert starcoder.tie_word_embeddings and any("embeddings tied" in note for note in starcoder.notes)
    assert total_params(starcoder) == expected
    assert set(starcoder.layer_windows()) == {4096}
    layer = 2 * 2 * 128 * 2  # 1,024 bytes per token and layer
    assert kv_cache_bytes(starcoder, 1, DType.bf16) == n * layer == 30_720
    assert kv_cache_bytes(starcoder, 1_000, DType.bf16) == 30_720_000
    assert kv_cache_bytes(starcoder, 100_000, DType.bf16) == n * layer * 4096 == 125_829_120
    assert kv_cache_bytes(starcoder, 100_000, W_MINUS_ONE) == n * layer * 4095 == 125_798_400
    assert lora_32("starcoder2-3b") == 32 * n * (2 * 2 * d + 2 * (d + kv) + 2 * (d + f)) == 47_677_440


def test_starcoder2_without_biases(tmp_path: Path) -> None:
    d, f, n, kv = 3072, 12288, 30, 256
    plain = spec_from_hf_config(edited(tmp_path, "starcoder2-3b", use_bias=False))
    assert total_params(spec("starcoder2-3b")) - total_params(plain) == n * (2 * d + 2 * kv + f + d)


# ---------------------------------------------------------------- SmolLM3


def test_smollm3_by_hand_nope_layers_cache_alike() -> None:
    d, f, v, n, kv = 2048, 11008, 128256, 36, 4 * 128  # 16 heads of 128, 4 KV heads
    per_layer = 2 * d * d + 2 * d * kv + 3 * d * f + 2 * d
    expected = n * per_layer + v * d + d  # config.json omits tie_word_embeddings: tied (SmolLM3Config)
    assert expected == 3_075_098_624
    smol = spec("smollm3-3b")
    assert smol.tie_word_embeddings and total_params(smol) == expected
    # 9 of the 36 layers are NoPE (no_rope_layers 0): they cache K and V like the others.
    assert kv_bytes_per_token(smol, DType.bf16) == 2 * n * 4 * 128 * 2 == 73_728
    assert kv_cache_bytes(smol, 1_000, DType.bf16) == 73_728_000
    assert kv_cache_bytes(smol, 100_000, DType.bf16) == 7_372_800_000
    assert lora_32("smollm3-3b") == 32 * n * (2 * 2 * d + 2 * (d + kv) + 2 * (d + f) + (f + d)) == 60_456_960


def test_smollm3_slides_only_its_nope_layers_when_asked(tmp_path: Path) -> None:
    path = edited(tmp_path, "smollm3-3b", layer_types=None, use_sliding_window=True, sliding_window=4096)
    smol = spec_from_hf_config(path)
    sliding = [i for i, w in enumerate(smol.layer_windows()) if w == 4096]
    assert sliding == [3, 7, 11, 15, 19, 23, 27, 31, 35]
    layer = 2 * 4 * 128 * 2
    assert kv_cache_bytes(smol, 100_000, DType.bf16) == 27 * layer * 100_000 + 9 * layer * 4096
    absent_kv = spec_from_hf_config(edited(tmp_path, "smollm3-3b", num_key_value_heads=None))
    assert absent_kv.num_key_value_heads == 4  # SmolLM3Config's default, not the 16 query heads


# ---------------------------------------------------------------- EXAONE 4.0


def test_exaone4_1_2b_by_hand_per_head_qk_norms_tied() -> None:
    d, f, v, n, kv, head = 2048, 4096, 102400, 30, 8 * 64, 64  # 32 heads of 64, 8 KV heads
    per_layer = (
        2 * d * d + 2 * d * kv + 3 * d * f  # q, o (d × d), k, v (d × 512), gate, up, down
        + 2 * head  # q_norm, k_norm: one RMSNorm of head_dim, shared by the heads
        + 2 * d  # post_attention_layernorm, post_feedforward_layernorm
    )  # fmt: skip
    expected = n * per_layer + v * d + d  # tie_word_embeddings true
    assert expected == 1_279_391_488
    exaone = spec("exaone-4.0-1.2b")
    assert total_params(exaone) == expected
    assert exaone.layer_types is None and set(exaone.layer_windows()) == {None}  # sliding_window null: all full
    assert kv_bytes_per_token(exaone, DType.bf16) == 2 * n * 8 * 64 * 2 == 61_440
    assert kv_cache_bytes(exaone, 100_000, DType.bf16) == 6_144_000_000
    assert lora_32("exaone-4.0-1.2b") == 32 * n * (2 * 2 * d + 2 * (d + kv) + 2 * (d + f) + (f + d)) == 30_474_240


def test_exaone4_pattern_rules(tmp_path: Path) -> None:
    pattern_4 = edited(tmp_path, "exaone-4.0-1.2b", layer_types=None, sliding_window=4096, sliding_window_pattern=4)
    hybrid = spec_from_hf_config(pattern_4)
    assert [i for i, w in enumerate(hybrid.layer_windows()) if w is None] == [3, 7, 11, 15, 19, 23, 27]
    layer = 2 * 8 * 64 * 2
    assert kv_cache_bytes(hybrid, 100_000, DType.bf16) == 7 * layer * 100_000 + 23 * layer * 4096
    listed = edited(tmp_path, "exaone-4.0-1.2b", sliding_window=4096, sliding_window_pattern="LLLG")
    assert spec_from_hf_config(listed).layer_types is None  # its layer_types decide: all full here
    lllg = edited(tmp_path, "exaone-4.0-1.2b", layer_types=None, sliding_window=4096, sliding_window_pattern="LLLG")
    with pytest.raises(EstimatorError, match="give layer_types"):
        spec_from_hf_config(lllg)  # Exaone4Config computes (i + 1) % "LLLG": transformers cannot either
    with pytest.raises(EstimatorError, match="sliding_window_pattern"):
        spec_from_hf_config(edited(tmp_path, "exaone-4.0-1.2b", sliding_window_pattern=[4]))


# ---------------------------------------------------------------- StableLM


def test_stablelm2_1_6b_by_hand_qkv_biases_two_layernorms() -> None:
    d, f, v, n = 2048, 5632, 100352, 24  # 32 heads of 64, K = H
    per_layer = 4 * d * d + 3 * d + 3 * d * f + 2 * 2 * d  # q, k, v (biased), o; MLP; two LayerNorms (2d each)
    expected = n * per_layer + 2 * v * d + 2 * d
    assert expected == 1_644_515_328
    stable = spec("stablelm-2-1_6b")
    assert total_params(stable) == expected
    assert kv_bytes_per_token(stable, DType.bf16) == 2 * n * 32 * 64 * 2 == 196_608
    assert kv_cache_bytes(stable, 100_000, DType.bf16) == 19_660_800_000
    assert lora_32("stablelm-2-1_6b") == 32 * n * (4 * 2 * d + 2 * (d + f) + (f + d)) == 30_277_632


def test_stablelm2_12b_by_hand_parallel_residual_and_per_head_qk_layernorms() -> None:
    d, f, v, n, kv = 5120, 13824, 100352, 40, 8 * 160  # 32 heads of 160, 8 KV heads
    per_layer = (
        2 * d * d + 2 * d * kv + 3 * d * f  # q, o; k, v (no qkv bias); MLP
        + 2 * d  # one input_layernorm (use_parallel_residual): weight and bias, whatever use_norm_bias says
        + 32 * 160 + 8 * 160  # q_layernorm: one bias-free LayerNorm of 160 per query head; k_layernorm per KV head
    )  # fmt: skip
    expected = n * per_layer + 2 * v * d + 2 * d
    assert expected == 12_143_185_920
    stable = spec("stablelm-2-12b")
    assert total_params(stable) == expected
    assert any("use_norm_bias" in note for note in stable.notes)
    assert kv_bytes_per_token(stable, DType.bf16) == 2 * n * 8 * 160 * 2 == 204_800


def test_stablelm_head_dim_is_hidden_over_heads(tmp_path: Path) -> None:
    odd = spec_from_hf_config(edited(tmp_path, "stablelm-2-1_6b", head_dim=128))
    assert odd.head_dim == 64 and any("ignored" in note for note in odd.notes)
    absent_kv = spec_from_hf_config(edited(tmp_path, "stablelm-2-12b", num_key_value_heads=None))
    assert absent_kv.num_key_value_heads == 32  # StableLmConfig's default


# ---------------------------------------------------------------- against transformers and peft


def _meta_count(config: dict[str, Any]) -> int:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = dict(config)
    model_type = config.pop("model_type")
    hf_config = transformers.AutoConfig.for_model(model_type, **config)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(hf_config)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", sorted(MINE))
def test_every_config_measures_exactly(name: str) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    from estimator.validate.checks import validate

    config = json.loads((EXTRA / f"{name}.json").read_text())
    assert _meta_count(config) == total_params(spec(name))
    result = validate(Query(spec(name), rank=8))
    differs = [check for check in result.checks if check.status == "differs"]
    assert not differs, differs


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
def test_edited_variants_count_as_transformers_builds_them(tmp_path: Path) -> None:
    variants = [
        edited(tmp_path / "a", "phi-2", qk_layernorm=True, tie_word_embeddings=True),
        edited(tmp_path / "b", "starcoder2-3b", use_bias=False),
        edited(tmp_path / "c", "stablelm-2-1_6b", use_parallel_residual=True, qk_layernorm=True),
    ]
    for path in variants:
        assert _meta_count(json.loads(path.read_text())) == total_params(spec_from_hf_config(path)), path


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
def test_exaone4_hybrid_cache_measures_exactly(tmp_path: Path) -> None:
    """No real EXAONE 4.0 32B config is stored: its 3-sliding-to-1-full cache is measured on the 1.2B with a
    window of 4,096 and sliding_window_pattern 4 (what Exaone4Config derives), beyond the window too."""
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    from estimator.validate.checks import kv_checks

    path = edited(tmp_path, "exaone-4.0-1.2b", layer_types=None, sliding_window=4096, sliding_window_pattern=4)
    checks, _ = kv_checks(spec_from_hf_config(path), DType.bf16)
    assert all(check.status == "ok" for check in checks), checks
    beyond = next(check for check in checks if "T = 100,000" in check.quantity)
    assert beyond.measured == 7 * (2 * 8 * 64 * 2) * 100_000 + 23 * (2 * 8 * 64 * 2) * 4095


@pytest.mark.validation
def test_default_layer_types_are_transformers_own(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    cases = [
        edited(tmp_path / "a", "olmo-3-1025-7b", layer_types=None),
        edited(tmp_path / "b", "exaone-4.0-1.2b", layer_types=None, sliding_window=4096, sliding_window_pattern=4),
        edited(tmp_path / "c", "smollm3-3b", layer_types=None, use_sliding_window=True, sliding_window=4096),
    ]
    for path in cases:
        config = json.loads(path.read_text())
        hf_config = transformers.AutoConfig.for_model(config.pop("model_type"), **config)
        ours = spec_from_hf_config(path)
        assert list(ours.layer_types or ()) == list(hf_config.layer_types), path

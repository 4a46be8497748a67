"""Recurrent families (qwen3_next, lfm2, mamba, mamba2): parameters, cache and fixed state by hand from real
configs, defaults and layer maps from edited ones, then against transformers and peft (validation-marked).

The fixed state is the science here: it does not grow with the text, so per token of text its bytes fall
as 1/T, like an adapter's. Default conventions (serving engines): K - 1 convolution columns, the state in the
cache's dtype; transformers' own: K columns, the recurrent state in float32 (qwen3_next, mamba, mamba2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from estimator.architecture import param_breakdown, total_params
from estimator.errors import EstimatorError
from estimator.hf_config import spec_from_hf_config
from estimator.kv import kv_bytes_per_token, kv_bytes_per_token_at, kv_cache_bytes, kv_state_bytes
from estimator.layout import ConvCache, ExpertLayout, KVFormat
from estimator.query import Query
from estimator.stores.targets import lora_params, resolve_targets
from estimator.transformers_rules import transformers_state_dtype
from estimator.units import DType

from .conftest import CONFIGS

EXTRA = CONFIGS / "extra"
QWEN3_NEXT = EXTRA / "qwen3-next-80b-a3b-instruct.json"
LFM2_1_2B = EXTRA / "lfm2-1.2b.json"
LFM2_350M = EXTRA / "lfm2-350m.json"
MAMBA_2_8B = EXTRA / "mamba-2.8b-hf.json"
MINE = [QWEN3_NEXT, LFM2_1_2B, LFM2_350M, MAMBA_2_8B]
TRANSFORMERS_FP32 = KVFormat(DType.bf16, conv=ConvCache.kernel, state_dtype=DType.fp32)
TRANSFORMERS_MODEL_DTYPE = KVFormat(DType.bf16, conv=ConvCache.kernel)
TRANSFORMERS_FORM = {"qwen3_next": TRANSFORMERS_FP32, "lfm2": TRANSFORMERS_MODEL_DTYPE}  # K columns; state dtype


def edited(tmp_path: Path, source: Path, **changes: Any) -> Path:
    """A copy of a real config with some keys changed (None removes the key)."""
    config = json.loads(source.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def synthetic(tmp_path: Path, **config: Any) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


# --- Qwen3-Next-80B-A3B: L 48 (36 DeltaNet, 12 attention), d 2,048, V 151,936, untied; attention H 16, K 2,
# d_h 256; DeltaNet H_k 16, d_k 128, H_v 32, d_v 128, kernel 4; 512 experts of 512, 10 per token, shared 512.


def test_qwen3_next_80b_params_by_hand() -> None:
    d, v = 2048, 151936
    conv = 2 * 16 * 128 + 32 * 128  # q, k and v channels of the convolution: 8,192
    delta_net = (
        d * (2 * 16 * 128 + 2 * 32 * 128)  # in_proj_qkvz: q, k, v and the gate z
        + d * 2 * 32  # in_proj_ba: b and a per value head
        + 32 * 128 * d  # out_proj
        + conv * 4  # conv1d, no bias
        + 2 * 32  # dt_bias, A_log
        + 128  # the gated norm of d_v
    )
    assert delta_net == 33_718_464
    attention = d * 2 * 16 * 256 + 2 * d * 2 * 256 + 16 * 256 * d + 2 * 256  # q twice as wide (gate), k, v, o, norms
    assert attention == 27_263_488
    moe = 512 * d + 512 * 3 * d * 512 + 3 * d * 512 + d  # router, experts, shared expert, its gate
    expected = 36 * delta_net + 12 * attention + 48 * (moe + 2 * d) + 2 * v * d + d
    assert expected == 79_674_391_296
    spec = spec_from_hf_config(QWEN3_NEXT)
    assert total_params(spec) == expected
    parts = param_breakdown(spec)
    assert parts["experts"] == 48 * 512 * 3 * d * 512
    assert parts["lm_head"] == v * d


def test_qwen3_next_80b_cache_and_fixed_state_by_hand() -> None:
    spec = spec_from_hf_config(QWEN3_NEXT)
    per_token = 12 * 2 * 2 * 256 * 2  # the 12 attention layers: K and V, 2 KV heads of 256, bf16
    assert kv_bytes_per_token(spec, DType.bf16) == per_token == 24_576
    conv, state = 8192, 32 * 128 * 128  # channels; H_v · d_k · d_v
    engines = 36 * (conv * 3 * 2 + state * 2)  # K - 1 columns, state in bf16
    assert kv_state_bytes(spec, DType.bf16) == engines == 39_518_208
    assert kv_state_bytes(spec, TRANSFORMERS_FP32) == 36 * (conv * 4 * 2 + state * 4) == 77_856_768
    assert transformers_state_dtype(spec) is DType.fp32
    for tokens, total in ((1, 39_542_784), (1_000, 64_094_208), (100_000, 2_497_118_208)):
        assert kv_cache_bytes(spec, tokens, DType.bf16) == per_token * tokens + engines == total


def test_qwen3_next_80b_lora_fused_experts_as_peft_converts_them() -> None:
    """peft converts Qwen3-Next's expert names (qwen2_moe's pattern): gate_up at 2r, down and router at r;
    the shared expert's gate, up and down lose their adapters to that renaming; its scalar gate keeps one."""
    spec = spec_from_hf_config(QWEN3_NEXT)
    delta_net = (2048 + 12288) + (2048 + 64) + (4096 + 2048)
    attention = (2048 + 8192) + 2 * (2048 + 512) + (4096 + 2048)
    moe = (2048 + 512) + 2 * 512 * (2048 + 1024) + 512 * (512 + 2048) + (2048 + 1)
    per_rank = 36 * delta_net + 12 * attention + 48 * moe
    assert per_rank == 215_202_096
    targets = resolve_targets(spec, "all-linear", ExpertLayout.fused)
    assert lora_params(targets, 32) == 32 * per_rank == 6_886_467_072
    assert "shared_expert.gate_proj" not in " ".join(targets.module_names)


def test_qwen3_next_layer_types_from_the_interval_and_dense_layers(tmp_path: Path) -> None:
    spec = spec_from_hf_config(edited(tmp_path, QWEN3_NEXT, full_attention_interval=3, mlp_only_layers=[0, 1]))
    assert spec.layer_types is not None
    assert spec.layer_types[:6] == ("linear_attention", "linear_attention", "full_attention") * 2
    assert spec.layer_types.count("full_attention") == 16
    assert spec.mlp_layer_types is not None and spec.mlp_layer_types[:3] == ("dense", "dense", "sparse")
    dense_mlp = 3 * 2048 * 5120
    moe = 512 * 2048 + 512 * 3 * 2048 * 512 + 3 * 2048 * 512 + 2048
    assert total_params(spec) - total_params(spec_from_hf_config(QWEN3_NEXT)) == (
        32 * 33_718_464 + 16 * 27_263_488 + 2 * dense_mlp - 36 * 33_718_464 - 12 * 27_263_488 - 2 * moe
    )


def test_qwen3_next_defaults_are_the_config_classes(tmp_path: Path) -> None:
    path = synthetic(tmp_path, model_type="qwen3_next", hidden_size=2048, num_hidden_layers=8, num_attention_heads=16)
    spec = spec_from_hf_config(path)
    assert (spec.linear_num_key_heads, spec.linear_num_value_heads, spec.linear_conv_kernel_dim) == (16, 32, 4)
    assert (spec.head_dim, spec.num_key_value_heads, spec.n_routed_experts) == (256, 2, 512)
    assert spec.intermediate_size == 5632
    assert spec.layer_types == ("linear_attention",) * 3 + ("full_attention",) + ("linear_attention",) * 3 + (
        "full_attention",
    )
    assert any("Qwen3NextConfig default" in note for note in spec.notes)


def test_qwen3_next_rejects_an_unknown_layer_kind(tmp_path: Path) -> None:
    with pytest.raises(EstimatorError, match="layer_types"):
        spec_from_hf_config(edited(tmp_path, QWEN3_NEXT, layer_types=["mamba"] * 48))


# --- LFM2: 16 layers (10 short convolutions, 6 attention at 2, 5, 8, 10, 12, 14), tied embeddings, V 65,536.


def test_lfm2_1_2b_params_by_hand() -> None:
    d, v, f = 2048, 65536, 256 * -(-int(1.0 * int(2 * 12288 / 3)) // 256)  # block_ff_dim 12,288 adjusted
    assert f == 8192
    conv = d * 3 * d + d * d + d * 3  # in_proj (B, C, x), out_proj, depthwise conv of kernel 3; no biases
    attention = d * 32 * 64 + 2 * d * 8 * 64 + 32 * 64 * d + 2 * 64  # q, k, v, out_proj, q and k layernorms
    per_layer = 3 * d * f + 2 * d  # w1, w3, w2; operator_norm, ffn_norm
    expected = 10 * conv + 6 * attention + 16 * per_layer + v * d + d  # tied head; embedding_norm
    assert expected == 1_170_340_608  # the model card's "Parameters: 1,170,340,608"
    spec = spec_from_hf_config(LFM2_1_2B)
    assert total_params(spec) == expected
    assert spec.intermediate_size == f and spec.tie_word_embeddings


def test_lfm2_350m_params_by_hand() -> None:
    d, v, f = 1024, 65536, 256 * -(-int(1.0 * int(2 * 6656 / 3)) // 256)  # 4,437 rounded up to 4,608
    assert f == 4608
    conv = d * 3 * d + d * d + d * 3
    attention = d * 16 * 64 + 2 * d * 8 * 64 + 16 * 64 * d + 2 * 64
    expected = 10 * conv + 6 * attention + 16 * (3 * d * f + 2 * d) + v * d + d
    assert expected == 354_483_968  # the model card's "Parameters: 354,483,968"
    assert total_params(spec_from_hf_config(LFM2_350M)) == expected


def test_lfm2_1_2b_cache_and_fixed_state_by_hand() -> None:
    spec = spec_from_hf_config(LFM2_1_2B)
    per_token = 6 * 2 * 8 * 64 * 2  # 6 attention layers, 8 KV heads of 64, bf16
    assert kv_bytes_per_token(spec, DType.bf16) == per_token == 12_288
    engines = 10 * 2048 * 2 * 2  # 10 conv layers: d channels × (L - 1 = 2) columns, bf16; no recurrent state
    assert kv_state_bytes(spec, DType.bf16) == engines == 81_920
    assert kv_state_bytes(spec, TRANSFORMERS_MODEL_DTYPE) == 10 * 2048 * 3 * 2 == 122_880
    assert transformers_state_dtype(spec) is None
    for tokens, total in ((1, 94_208), (1_000, 12_369_920), (100_000, 1_228_881_920)):
        assert kv_cache_bytes(spec, tokens, DType.bf16) == per_token * tokens + engines == total


def test_lfm2_1_2b_lora_by_hand() -> None:
    spec = spec_from_hf_config(LFM2_1_2B)
    conv = (2048 + 6144) + (2048 + 2048)
    attention = (2048 + 2048) + 2 * (2048 + 512) + (2048 + 2048)
    feed_forward = 3 * (2048 + 8192)
    per_rank = 10 * conv + 6 * attention + 16 * feed_forward
    assert lora_params(resolve_targets(spec, "all-linear"), 32) == 32 * per_rank == 22_216_704
    assert lora_params(resolve_targets(spec, "attention"), 8) == 8 * (10 * conv + 6 * attention)


def test_lfm2_widths_and_layers_as_lfm2config_reads_them(tmp_path: Path) -> None:
    """block_ff_dim overrides intermediate_size; the multiplier scales before the rounding; tie_embedding
    overrides tie_word_embeddings; without layer_types, full_attn_idxs names the attention layers."""
    path = edited(tmp_path / "a", LFM2_1_2B, intermediate_size=999)
    assert spec_from_hf_config(path).intermediate_size == 8192  # from block_ff_dim 12,288
    path = edited(tmp_path / "b", LFM2_350M, block_ffn_dim_multiplier=1.5)
    assert spec_from_hf_config(path).intermediate_size == 256 * -(-int(1.5 * 4437) // 256) == 6656
    path = edited(tmp_path / "c", LFM2_350M, block_auto_adjust_ff_dim=False, tie_embedding=False)
    spec = spec_from_hf_config(path)
    assert spec.intermediate_size == 6656 and not spec.tie_word_embeddings
    path = edited(tmp_path / "d", LFM2_350M, full_attn_idxs=None)
    assert spec_from_hf_config(path).layer_types == ("full_attention",) * 16  # Lfm2Config: every layer attends
    spec = spec_from_hf_config(LFM2_350M)
    assert spec.layer_types is not None
    assert [i for i, t in enumerate(spec.layer_types) if t == "full_attention"] == [2, 5, 8, 10, 12, 14]


# --- Mamba 2.8B: 64 Mamba-1 layers, d 2,560, d_inner 5,120, N 16, K 4, R 160, V 50,280, tied; no attention, no MLP.


def test_mamba_2_8b_params_by_hand() -> None:
    d, di, n, r, v = 2560, 5120, 16, 160, 50280
    per_layer = (
        d * 2 * di  # in_proj: x and the gate z
        + di * (4 + 1)  # conv1d weight and bias
        + di * (r + 2 * n)  # x_proj: the time step, B and C
        + (r + 1) * di  # dt_proj with its bias
        + di * (n + 1)  # A_log, D
        + di * d  # out_proj
        + d  # the layer's norm
    )
    assert per_layer == 41_244_160
    expected = 64 * per_layer + v * d + d  # tied head; norm_f
    assert expected == 2_768_345_600
    spec = spec_from_hf_config(MAMBA_2_8B)
    assert total_params(spec) == expected
    assert spec.num_attention_heads is None and spec.intermediate_size is None
    assert param_breakdown(spec)["attention"] == 0


def test_mamba_2_8b_holds_only_a_fixed_state() -> None:
    spec = spec_from_hf_config(MAMBA_2_8B)
    assert kv_bytes_per_token(spec, DType.bf16) == 0
    engines = 64 * (5120 * 3 * 2 + 5120 * 16 * 2)  # conv d_inner × (K - 1), state d_inner · N, bf16
    assert kv_state_bytes(spec, DType.bf16) == engines == 12_451_840
    assert kv_state_bytes(spec, TRANSFORMERS_FP32) == 64 * (5120 * 4 * 2 + 5120 * 16 * 4) == 23_592_960
    for tokens in (1, 1_000, 100_000):
        assert kv_cache_bytes(spec, tokens, DType.bf16) == engines
        assert kv_bytes_per_token_at(spec, tokens, DType.bf16) == engines / tokens  # falls as 1 / T


def test_mamba_lora_leaves_out_proj_as_peft_refuses_it() -> None:
    spec = spec_from_hf_config(MAMBA_2_8B)
    targets = resolve_targets(spec, "all-linear")
    assert targets.module_names == ("mixer.in_proj", "mixer.x_proj", "mixer.dt_proj")
    per_rank = 64 * ((2560 + 10240) + (5120 + 192) + (160 + 5120))
    assert lora_params(targets, 32) == 32 * per_rank == 47_906_816
    with pytest.raises(EstimatorError):
        resolve_targets(spec, "attention")  # a pure SSM has no attention maps


def test_mamba_defaults_and_auto_rank(tmp_path: Path) -> None:
    spec = spec_from_hf_config(synthetic(tmp_path, model_type="mamba", hidden_size=768, num_hidden_layers=24))
    assert (spec.vocab_size, spec.mamba_d_inner, spec.mamba_d_state, spec.mamba_dt_rank) == (50280, 1536, 16, 48)
    assert spec.tie_word_embeddings
    assert any("time_step_rank auto" in note for note in spec.notes)


@pytest.mark.parametrize(
    ("source", "changes", "field"),
    [
        (MAMBA_2_8B, {"time_step_rank": "big"}, "time_step_rank"),
        (MAMBA_2_8B, {"conv_kernel": 0}, "conv_kernel"),
        (LFM2_350M, {"conv_L_cache": 1.5}, "conv_L_cache"),
        (LFM2_350M, {"layer_types": ["conv", "mamba"]}, "layer_types"),
        (QWEN3_NEXT, {"linear_num_value_heads": "32"}, "linear_num_value_heads"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, source: Path, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(EstimatorError, match=field):
        spec_from_hf_config(edited(tmp_path, source, **changes))


def test_mamba2_params_and_state_by_hand(tmp_path: Path) -> None:
    """Mamba-Codestral-7B's shape (d 4,096, 64 layers, 128 heads of 64, 8 groups, N 128, V 32,768, untied, as the
    copy of its config in NX-AI's xlstm benchmarks gives it); no real Mamba-2 config.json is stored."""
    path = synthetic(
        tmp_path, model_type="mamba2", hidden_size=4096, num_hidden_layers=64, num_heads=128, head_dim=64,
        n_groups=8, state_size=128, expand=2, conv_kernel=4, vocab_size=32768, tie_word_embeddings=False,
    )  # fmt: skip
    spec = spec_from_hf_config(path)
    d, di, conv, heads, v = 4096, 8192, 8192 + 2 * 8 * 128, 128, 32768
    per_layer = d * (2 * di + 2 * 8 * 128 + heads) + conv * 4 + conv + 3 * heads + di + di * d + d
    expected = 64 * per_layer + 2 * v * d + d
    assert expected == 7_285_403_648
    assert total_params(spec) == expected
    assert kv_state_bytes(spec, DType.bf16) == 64 * (conv * 3 * 2 + heads * 64 * 128 * 2)
    assert kv_state_bytes(spec, TRANSFORMERS_FP32) == 64 * (conv * 4 * 2 + heads * 64 * 128 * 4)
    assert resolve_targets(spec, "all-linear").module_names == ("mixer.in_proj",)


# --- Against transformers and peft (validation-marked; skipped without torch).


def _peft_prefix(layers: int, kv_heads: int, head_dim: int, tokens: int = 20) -> int:
    """peft sizes a prefix from config.json for every layer: n · 2 · L · K · d_h."""
    return tokens * 2 * layers * kv_heads * head_dim


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    ("path", "peft_prefix"),
    [
        (LFM2_1_2B, _peft_prefix(16, 8, 64)),  # the cache: 6 attention layers; peft: all 16
        (LFM2_350M, _peft_prefix(16, 8, 64)),
        (QWEN3_NEXT, _peft_prefix(48, 2, 256)),  # 12 attention layers; peft: all 48 (about 9 minutes on 2 cores)
    ],
    ids=lambda value: value.stem if isinstance(value, Path) else "",
)
def test_hybrids_validate(path: Path, peft_prefix: int) -> None:
    """Every check ok or a stated convention; prefix tuning as peft sizes it, for every layer recurrent or not
    (n · 2 · L · K · d_h from config.json), where the cache holds K and V on the attention layers alone."""
    pytest.importorskip("torch")
    from estimator.validate import measure
    from estimator.validate.checks import validate

    spec = spec_from_hf_config(path)
    assert measure.count_params(measure.build_model(spec)) == total_params(spec)
    result = validate(Query(spec, rank=8))
    assert [check for check in result.checks if check.status == "differs"] == []
    prefix = next(check for check in result.checks if check.quantity.startswith("prefix tuning"))
    assert prefix.measured == peft_prefix
    state = next(check for check in result.checks if check.quantity.startswith("fixed state"))
    assert state.status == "ok" and state.measured == kv_state_bytes(spec, TRANSFORMERS_FORM[spec.model_type])


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
def test_mamba_2_8b_against_transformers_and_peft() -> None:
    """Parameters on the meta device, LoRA with the module names peft accepts, and the fixed state after a forward
    pass (transformers' Mamba-1 scan loops over tokens in Python: measured at 7 and 40 tokens, the same bytes)."""
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    from estimator.validate import measure

    spec = spec_from_hf_config(MAMBA_2_8B)
    model = measure.build_model(spec)
    assert measure.count_params(model) == total_params(spec)
    targets = resolve_targets(spec, "all-linear")
    with torch.device("meta"):
        lora = peft.get_peft_model(model, peft.LoraConfig(r=8, target_modules=list(targets.module_names)))
    assert sum(p.numel() for p in lora.parameters() if p.requires_grad) == lora_params(targets, 8) == 11_976_704
    for tokens, (growing, fixed) in measure.cache_bytes(spec, [7, 40], DType.bf16).items():
        assert (growing, fixed) == (0, 23_592_960), tokens


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
def test_mamba2_against_transformers_and_peft(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    from estimator.validate import measure

    path = synthetic(
        tmp_path, model_type="mamba2", hidden_size=64, num_hidden_layers=2, num_heads=16, head_dim=8, n_groups=2,
        state_size=16, vocab_size=128,
    )  # fmt: skip
    spec = spec_from_hf_config(path)
    model = measure.build_model(spec)
    assert measure.count_params(model) == total_params(spec)
    targets = resolve_targets(spec, "all-linear")
    with torch.device("meta"):
        lora = peft.get_peft_model(model, peft.LoraConfig(r=8, target_modules=list(targets.module_names)))
    assert sum(p.numel() for p in lora.parameters() if p.requires_grad) == lora_params(targets, 8)
    conv, state = 128 + 2 * 2 * 16, 16 * 8 * 16  # d_inner + 2 G N channels; H · P · N
    expected = 2 * (conv * 4 * 2 + state * 4)  # 2 layers: K columns in bf16, the state in float32
    assert kv_state_bytes(spec, TRANSFORMERS_FP32) == expected
    for tokens, measured in measure.cache_bytes(spec, [1, 300], DType.bf16).items():
        assert measured == (0, expected), tokens


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
def test_mamba2_validate(tmp_path: Path) -> None:
    """The whole validation of a small Mamba-2: every check ok or a stated convention; prefix tuning is not
    estimated (no layer caches keys or values; peft would build n · 2 · L · hidden_size from config.json), and
    says so in the notes."""
    pytest.importorskip("torch")
    from estimator.validate.checks import validate

    path = synthetic(
        tmp_path, model_type="mamba2", hidden_size=64, num_hidden_layers=2, num_heads=16, head_dim=8, n_groups=2,
        state_size=16, vocab_size=128,
    )  # fmt: skip
    result = validate(Query(spec_from_hf_config(path), rank=8))
    assert not any(check.quantity.startswith("prefix tuning") for check in result.checks)
    assert any(note.startswith("prefix: prefix tuning prepends keys and values") for note in result.method)
    assert [check for check in result.checks if check.status == "differs"] == []

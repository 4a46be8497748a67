"""Families dbrx and jetmoe.

Each type on its config class's own defaults (shrunk as tests/test_config_defaults.py shrinks them) and on a second
shape that moves the fields the family reads (KV heads, experts, top-k, widths, activation, ties), against what
transformers 5.24 and peft 0.21 build: parameters on the meta device, peft's LoRA r=8 on all-linear (trainable
parameters; neither family's expert tensors are converted by peft), and the bytes of the cache transformers returns
after a real bf16 forward pass (both route on data, which fake tensors cannot run). Then DBRX by hand from its
published config, JetMoE's class defaults by hand, active parameters, the validate path's cache measurement where
fake tensors cannot run the forward pass, and the values the families do not model, refused in one line.

Skipped where torch is not installed (install the `validate` extra; CI does).
"""

from __future__ import annotations

from typing import Any

import pytest

from estimator.architecture import active_params, total_params
from estimator.errors import EstimatorError
from estimator.kv import kv_cache_bytes
from estimator.layout import ExpertLayout
from estimator.stores.kinds import peft_target_modules
from estimator.stores.targets import lora_params, resolve_targets
from estimator.units import DType

from .test_config_defaults import measured, peft_lora, shrunk_fields, written_config
from .test_family_batch_b import real_cache_bytes, spec_of

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
checks = pytest.importorskip("estimator.validate.checks")

pytestmark = [pytest.mark.validation, pytest.mark.filterwarnings("ignore")]

TYPES = ["dbrx", "jetmoe"]
RANK = 8


@pytest.mark.parametrize("second", [False, True], ids=["defaults", "second"])
@pytest.mark.parametrize("model_type", TYPES)
def test_family_equals_transformers_and_peft(model_type: str, second: bool) -> None:
    config = written_config(model_type, shrunk_fields(model_type, second))
    spec = spec_of(config)
    params, model = measured(config)
    assert total_params(spec) == params
    targets = resolve_targets(spec, "all-linear", ExpertLayout.fused)
    assert lora_params(targets, RANK) == peft_lora(model, peft_target_modules(targets, spec))
    assert kv_cache_bytes(spec, 7, checks.transformers_format(spec, DType.bf16)) == real_cache_bytes(config, 7)


@pytest.mark.parametrize("second", [False, True], ids=["defaults", "second"])
@pytest.mark.parametrize("model_type", TYPES)
def test_to_config_is_the_inverse_of_read(model_type: str, second: bool) -> None:
    from estimator.validate.hf import transformers_config

    spec = spec_of(written_config(model_type, shrunk_fields(model_type, second)))
    again = spec_of(transformers_config(spec))
    identity = {"name", "display_name", "source", "notes", "torch_dtype"}
    assert again.to_dict(exclude=identity) == spec.to_dict(exclude=identity)


def test_second_shapes_move_the_fields_read() -> None:
    base = {t: spec_of(written_config(t, shrunk_fields(t, False))) for t in TYPES}
    moved = {t: spec_of(written_config(t, shrunk_fields(t, True))) for t in TYPES}
    assert (base["dbrx"].num_key_value_heads, moved["dbrx"].num_key_value_heads) == (1, 2)
    assert (base["dbrx"].n_routed_experts, moved["dbrx"].n_routed_experts) == (4, 8)
    assert moved["dbrx"].option("ffn_act_fn") == "gelu" and moved["dbrx"].head_dim == 64 // 8
    assert (base["jetmoe"].num_attention_heads, moved["jetmoe"].num_attention_heads) == (2 * 2, 4 * 1)  # K · k
    assert base["jetmoe"].tie_word_embeddings and not moved["jetmoe"].tie_word_embeddings


# --- by hand ----------------------------------------------------------------------------------------------------

# DBRX's architecture values (huggingface.co/databricks/dbrx-instruct, config.json; the same in dbrx-base), as public
# repositories copy the file (mlx-community/dbrx-instruct-4bit's copy, quoted in a test of a public MLX port).
DBRX = {
    "model_type": "dbrx", "d_model": 6144, "n_heads": 48, "n_layers": 40, "max_seq_len": 32768, "vocab_size": 100352,
    "tie_word_embeddings": False,
    "attn_config": {"attn_pdrop": 0, "clip_qkv": 8, "kv_n_heads": 8, "rope_theta": 500000},
    "ffn_config": {"ffn_act_fn": {"name": "silu"}, "ffn_hidden_size": 10752, "moe_num_experts": 16, "moe_top_k": 4,
                   "moe_jitter_eps": 0, "moe_loss_weight": 0.05, "moe_normalize_expert_weights": 1},
}  # fmt: skip


def test_dbrx_by_hand() -> None:
    """Databricks: 132B parameters, 36B active."""
    d, h, kv, f, e, k, n, v = 6144, 48, 8, 10752, 16, 4, 40, 100352
    dh = d // h
    wqkv, out_proj, router, expert = d * (d + 2 * kv * dh), d * d, d * e, 3 * d * f
    block = wqkv + out_proj + router + e * expert + 2 * d  # two LayerNorms without bias
    assert (wqkv, expert, block) == (50_331_648, 198_180_864, 3_259_084_800)
    total = n * block + 2 * v * d + d  # wte, untied lm_head, norm_f
    spec = spec_of(DBRX)
    assert (spec.head_dim, spec.num_key_value_heads) == (128, 8)
    assert total_params(spec) == total == 131_596_523_520
    assert active_params(spec) == total - n * (e - k) * expert == 36_469_708_800
    assert kv_cache_bytes(spec, 1, checks.transformers_format(spec, DType.bf16)) == 2 * n * kv * dh * 2  # 163,840
    assert any("moe_normalize_expert_weights is 1" in note for note in spec.notes)
    # transformers 5.24's strict DbrxFFNConfig refuses the published integer 1; it builds the model with 1.0
    ffn = {**DBRX["ffn_config"], "moe_num_experts": 4, "moe_normalize_expert_weights": 1.0}
    shrunk = {**DBRX, "n_layers": 2, "ffn_config": ffn}
    assert total_params(spec_of(shrunk)) == measured(shrunk)[0]  # transformers builds what the formula counts


def test_jetmoe_class_defaults_by_hand() -> None:
    """JetMoeConfig's own defaults, unshrunk (12 layers, d 2,048, K 16 of 128, F 5,632, E 8, top 2, tied)."""
    d, n, kv, dh, f, e, k, v = 2048, 12, 16, 128, 5632, 8, 2, 32000
    a = kv * dh
    expert = 2 * d * a + 3 * d * f  # one MoA expert (q, o) and one MLP expert (gate, up, down)
    layer = 2 * d * a + 2 * d * e + e * expert + 2 * d + 2 * d  # kv_proj, two routers, experts, two biases, norms
    assert (expert, layer) == (42_991_616, 352_362_496)
    total = n * layer + v * d + d  # tied head
    config = written_config("jetmoe", {})
    spec = spec_of(config)
    assert spec.num_attention_heads == kv * k
    assert total_params(spec) == total == measured(config)[0] == 4_293_888_000
    assert active_params(spec) == total - n * (e - k) * expert == 1_198_491_648


def test_jetmoe_heads_given_are_not_read() -> None:
    """JetMoeConfig keeps a num_attention_heads given (applied after it derives K · k), but its attention never reads
    it: the model, its parameters and its cache are those of K · k query heads."""
    config = written_config("jetmoe", shrunk_fields("jetmoe", True))
    given = {**config, "num_attention_heads": 7}
    assert transformers.AutoConfig.for_model("jetmoe", num_attention_heads=7).num_attention_heads == 7
    spec = spec_of(given)
    assert spec.num_attention_heads == 4 * 1  # K · k
    assert total_params(spec) == total_params(spec_of(config)) == measured(given)[0]
    assert real_cache_bytes(given, 7) == kv_cache_bytes(spec, 7, checks.transformers_format(spec, DType.bf16))
    assert any("num_attention_heads is K · k = 4" in note for note in spec.notes)


def test_per_expert_layout_counts_the_same_weights() -> None:
    """The per-expert layout (an nn.Linear per expert map) holds the same parameters; its LoRA adapts every expert
    map: r · (d_in + d_out) · E per map and layer, by hand."""
    spec = spec_of(written_config("jetmoe", shrunk_fields("jetmoe", True)))  # d 64, K 4 of 16, F 48, E 4, 2 layers
    d, a, f, e, n = 64, 4 * 16, 48, 4, 2
    targets = resolve_targets(spec, "all-linear", ExpertLayout.per_expert)
    experts = RANK * e * n * ((d + a) * 2 + (d + f) * 3)
    fused = resolve_targets(spec, "all-linear", ExpertLayout.fused)
    assert lora_params(targets, RANK) - lora_params(fused, RANK) == experts


# --- validate: the cache where fake tensors cannot run the forward pass -------------------------------------------


def test_validate_measures_the_cache_on_a_shrunk_copy() -> None:
    spec = spec_of(written_config("dbrx", shrunk_fields("dbrx", True)))
    found, method = checks.kv_checks(spec, DType.bf16)
    assert found and all(check.status == "ok" for check in found)
    assert "fake tensors cannot run its forward pass" in method[0] and "copy of 2 layers" in method[0]


def test_validate_says_in_one_line_when_it_cannot_measure_the_cache() -> None:
    found, method = checks.kv_checks(spec_of(DBRX), DType.bf16)  # its 2-layer copy: 6.5B parameters
    assert found == [] and len(method) == 1
    assert method[0].startswith("KV cache: not measured") and "\n" not in method[0]


@pytest.mark.parametrize("model_type", TYPES)
def test_the_validation_twin_is_what_transformers_builds(model_type: str) -> None:
    """validate saves a real LoRA on a shrunken twin: its spec must be the model transformers builds from it (DBRX
    keeps d_model, its head_dim being d_model / n_heads; JetMoE's heads follow the twin's top-k)."""
    from estimator.validate.hf import transformers_config, twin_spec

    twin, _ = twin_spec(spec_of(written_config(model_type, shrunk_fields(model_type, False))), 64)
    config = transformers_config(twin)
    assert spec_of(config).num_attention_heads == twin.num_attention_heads
    assert total_params(twin) == measured(config)[0]
    targets = resolve_targets(twin, "all-linear", ExpertLayout.fused)
    assert lora_params(targets, RANK) == peft_lora(measured(config)[1], peft_target_modules(targets, twin))


# --- names read as another field, and values not modelled ---------------------------------------------------------


def test_dbrx_hidden_size_without_d_model_builds_a_model_that_cannot_run() -> None:
    """DbrxConfig sizes ffn_config from d_model (2,048 by default) before it reads hidden_size as d_model."""
    fields = {**shrunk_fields("dbrx", True), "hidden_size": 64}
    del fields["d_model"]
    built = transformers.AutoConfig.for_model("dbrx", **fields)
    assert (built.d_model, built.ffn_config.hidden_size) == (64, 2048)
    given = {k: v for k, v in written_config("dbrx", shrunk_fields("dbrx", True)).items() if k != "d_model"}
    with pytest.raises(EstimatorError, match="hidden_size is 64, without d_model") as refused:
        spec_of({**given, "hidden_size": 64})
    assert "\n" not in str(refused.value)


def _dbrx(**change: Any) -> dict[str, Any]:
    config = written_config("dbrx", shrunk_fields("dbrx", True))
    for key, value in change.items():
        section, _, field = key.partition("__")
        if field:
            config[section] = {**config[section], field: value}
        else:
            config[key] = value
    return config


REFUSED = [
    (_dbrx(attn_config__rope_theta=None), "rope_theta"),  # DbrxAttention reads it: transformers cannot build
    (_dbrx(attn_config__kv_n_heads=None), "kv_n_heads"),
    (_dbrx(ffn_config__moe_top_k="2"), "moe_top_k"),
    (_dbrx(ffn_config__ffn_act_fn={"name": "xielu"}), "ffn_act_fn"),  # an activation holding parameters
    (_dbrx(tie_word_embeddings=True), "tie_word_embeddings"),  # DbrxConfig refuses it
    (_dbrx(head_dim=32), "head_dim"),  # its attention uses d_model / n_heads, its RoPE head_dim
    (_dbrx(n_heads=6), "heads"),  # 64 / 6
    (_dbrx(sliding_window=16), "sliding_window"),  # a window its attention does not read
    (_dbrx(attn_config=[]), "attn_config"),
    (
        {**written_config("jetmoe", shrunk_fields("jetmoe", True)), "activation_function": "xielu"},
        "activation_function",
    ),
    ({**written_config("jetmoe", shrunk_fields("jetmoe", True)), "kv_channels": None}, "kv_channels"),
    ({**written_config("jetmoe", shrunk_fields("jetmoe", True)), "num_experts_per_tok": 5}, "num_experts_per_tok"),
    ({**written_config("jetmoe", shrunk_fields("jetmoe", True)), "sliding_window": 16}, "sliding_window"),
]


@pytest.mark.parametrize(("config", "field"), REFUSED, ids=[f for _, f in REFUSED])
def test_an_unmodelled_value_is_refused_in_one_line(config: dict[str, Any], field: str) -> None:
    with pytest.raises(EstimatorError) as refused:
        spec_of(config)
    assert field in str(refused.value) and "\n" not in str(refused.value)

"""Families ernie4_5, ernie4_5_moe, hunyuan_v1_dense, hunyuan_v1_moe, granitemoe_swa, cohere2_moe, exaone_moe, afmoe.

Each type on its config class's own defaults (shrunk as tests/test_config_defaults.py shrinks them: fewer
layers and smaller widths, layer patterns kept) and on a second shape that moves the fields the family reads
(biases, head_dim, windows, dense prefixes, shared experts), against what transformers 5.24 and peft 0.21
build: parameters on the meta device, peft's LoRA r=8 on all-linear (trainable parameters; the fused experts
as peft converts them), and the bytes of the cache transformers returns after a real forward pass (bf16) over
7 tokens and over more tokens than any window holds. Then a by-hand count of ERNIE-4.5-21B-A3B, the names
each config class reads as another field, and the values the families do not model, refused in one line.

Skipped where torch is not installed (install the `validate` extra; CI does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from estimator.architecture import active_params, total_params
from estimator.errors import EstimatorError
from estimator.hf_config import spec_from_config
from estimator.kv import kv_cache_bytes
from estimator.layout import ExpertLayout
from estimator.stores.kinds import peft_target_modules
from estimator.stores.targets import lora_params, resolve_targets
from estimator.units import DType

from .test_config_defaults import measured, peft_lora, shrunk_fields, written_config

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
measure = pytest.importorskip("estimator.validate.measure")
checks = pytest.importorskip("estimator.validate.checks")

pytestmark = [pytest.mark.validation, pytest.mark.filterwarnings("ignore")]

TYPES = [
    "ernie4_5",
    "ernie4_5_moe",
    "hunyuan_v1_dense",
    "hunyuan_v1_moe",
    "granitemoe_swa",
    "cohere2_moe",
    "exaone_moe",
    "afmoe",
]
RANK = 8
PAST_WINDOW_AT_MOST = 64  # windows a real forward pass here runs past (the second shapes' 16)


def real_cache_bytes(config: dict[str, Any], tokens: int) -> int:
    """Bytes of the keys and values in the cache transformers returns after a real bf16 forward pass."""
    fields = {k: v for k, v in config.items() if k != "model_type"}
    hf_config = transformers.AutoConfig.for_model(config["model_type"], **fields)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(hf_config).to(torch.bfloat16).eval()
    ids = torch.randint(0, hf_config.vocab_size, (1, tokens))
    with torch.no_grad():
        cache = model(input_ids=ids, use_cache=True).past_key_values
    return sum(sum(measure.layer_cache_bytes(layer)) for layer in cache.layers)


def spec_of(config: dict[str, Any]) -> Any:
    return spec_from_config(config, Path(f"{config['model_type']}.json"))


@pytest.mark.parametrize("second", [False, True], ids=["defaults", "second"])
@pytest.mark.parametrize("model_type", TYPES)
def test_family_equals_transformers_and_peft(model_type: str, second: bool) -> None:
    config = written_config(model_type, shrunk_fields(model_type, second))
    spec = spec_of(config)
    params, model = measured(config)
    assert total_params(spec) == params
    experts = ExpertLayout.fused if spec.is_moe else ExpertLayout.per_expert
    targets = resolve_targets(spec, "all-linear", experts)
    assert lora_params(targets, RANK) == peft_lora(model, peft_target_modules(targets, spec))
    held = checks.transformers_format(spec, DType.bf16)  # a full window keeps w - 1 tokens
    windows = [w for w in spec.layer_windows() if w is not None]
    beyond = [max(windows) + 2] if windows and max(windows) <= PAST_WINDOW_AT_MOST else []  # 4,096: too slow here
    for tokens in (7, *beyond):
        assert kv_cache_bytes(spec, tokens, held) == real_cache_bytes(config, tokens)


def test_ernie_moe_layer_interval() -> None:
    """moe_layer_interval 2 from layer 0: sparse where (i + 1) % 2 == 0, up to moe_layer_end_index 2."""
    fields = {**shrunk_fields("ernie4_5_moe", second=True), "num_hidden_layers": 5, "moe_layer_end_index": 2}
    config = written_config("ernie4_5_moe", {**fields, "moe_layer_start_index": 0, "moe_layer_interval": 2})
    spec = spec_of(config)
    assert spec.mlp_layer_types == ("dense", "sparse", "dense", "dense", "dense")
    assert total_params(spec) == measured(config)[0]


def test_second_shapes_move_the_fields_read() -> None:
    """The second shapes are not the defaults again: each moves a field its family reads."""
    moved = {t: spec_of(written_config(t, shrunk_fields(t, True))) for t in TYPES}
    base = {t: spec_of(written_config(t, shrunk_fields(t, False))) for t in TYPES}
    assert moved["ernie4_5"].attention_bias and not base["ernie4_5"].attention_bias
    assert moved["ernie4_5_moe"].mlp_layer_types == ("sparse", "dense")  # start 0, end 0
    assert base["ernie4_5_moe"].mlp_layer_types == ("dense", "sparse")  # start 1, end -1 (the last)
    assert moved["cohere2_moe"].layer_windows() == (16, 16, 16, None)
    assert moved["exaone_moe"].mlp_layer_types == ("dense", "dense", "sparse", "sparse")
    assert moved["granitemoe_swa"].layer_windows() == (None, 16, 16, 16)
    assert base["granitemoe_swa"].layer_windows() == (None, 128, 128, 128)
    assert moved["afmoe"].layer_windows() == (16, None, 16, None)
    assert moved["afmoe"].mlp_layer_types == ("dense", "dense", "sparse", "sparse")


# --- ERNIE-4.5-21B-A3B by hand ------------------------------------------------------------------------

# The architecture values of ERNIE-4.5-21B-A3B (huggingface.co/baidu/ERNIE-4.5-21B-A3B-PT), as public
# repositories copy its config.json (no verbatim copy of the file itself was found); Baidu: 21B total, 3B active.
ERNIE_21B_A3B = {
    "model_type": "ernie4_5_moe", "hidden_size": 2560, "intermediate_size": 12288, "moe_intermediate_size": 1536,
    "num_hidden_layers": 28, "num_attention_heads": 20, "num_key_value_heads": 4, "moe_num_experts": 64,
    "moe_num_shared_experts": 2, "moe_k": 6, "moe_layer_start_index": 1, "moe_layer_end_index": 27,
    "moe_layer_interval": 1, "vocab_size": 103424, "max_position_embeddings": 131072, "tie_word_embeddings": True,
    "use_bias": False,
}  # fmt: skip


def test_ernie_4_5_21b_a3b_by_hand() -> None:
    d, h, kv, dh, f, fe, e, s, k, n, v = 2560, 20, 4, 128, 12288, 1536, 64, 2, 6, 28, 103424
    attention = d * h * dh + 2 * d * kv * dh + h * dh * d  # q, k, v, o; head_dim = 2,560 / 20
    assert attention == 15_728_640
    expert = 3 * d * fe
    sparse = d * e + e + e * expert + 3 * d * s * fe  # router, its correction bias, experts, shared MLP
    assert sparse == 778_731_584
    dense = 3 * d * f  # layer 0 (moe_layer_start_index 1)
    total = n * (attention + 2 * d) + dense + (n - 1) * sparse + v * d + d  # tied head
    assert total == 21_825_437_888  # Baidu: 21B
    spec = spec_of(ERNIE_21B_A3B)
    assert spec.head_dim == dh
    assert total_params(spec) == total
    assert active_params(spec) == total - (n - 1) * (e - k) * expert == 3_352_150_208  # Baidu: 3B active
    shrunk = {**ERNIE_21B_A3B, "num_hidden_layers": 2, "moe_layer_end_index": 1, "moe_num_experts": 8}
    assert total_params(spec_of(shrunk)) == measured(shrunk)[0]  # transformers builds what the formula counts
    with_mtp = spec_of({**ERNIE_21B_A3B, "num_nextn_predict_layers": 1})  # not built by transformers, not counted
    assert total_params(with_mtp) == total
    assert any("multi-token-prediction" in note for note in with_mtp.notes)


def test_ernie_4_5_defaults_are_the_0_3b() -> None:
    """Ernie4_5Config's defaults ("0.3B style"): 18 · (1,024 · 2,048 + 2 · 1,024 · 256 + 2,048 · 1,024
    + 3 · 1,024 · 3,072 + 2 · 1,024) + 103,424 · 1,024 + 1,024 (tied head)."""
    config = written_config("ernie4_5", {})
    total = 18 * (1024 * 2048 + 2 * 1024 * 256 + 2048 * 1024 + 3 * 1024 * 3072 + 2 * 1024) + 103424 * 1024 + 1024
    assert total == 360_748_032
    assert total_params(spec_of(config)) == total == measured(config)[0]


# --- names read as another field, and per-layer lists ---------------------------------------------------


@pytest.mark.parametrize(
    ("model_type", "alias", "name"),
    [
        ("ernie4_5_moe", "num_experts", "moe_num_experts"),
        ("ernie4_5_moe", "num_experts_per_tok", "moe_k"),
        ("hunyuan_v1_moe", "num_local_experts", "num_experts"),
        ("hunyuan_v1_moe", "num_experts_per_tok", "moe_topk"),
    ],
)
def test_an_alias_counts_as_the_field(model_type: str, alias: str, name: str) -> None:
    config = written_config(model_type, shrunk_fields(model_type, second=True))
    renamed = {(alias if key == name else key): value for key, value in config.items()}
    assert spec_of(renamed) == spec_of(config)
    with pytest.raises(EstimatorError, match=f"both {alias} .* and {name}"):
        spec_of({**renamed, name: config[name] + 1})


def test_ernie_4_5_null_head_dim_is_hidden_over_heads() -> None:
    """Ernie4_5Config (not the MoE one) turns a null head_dim into hidden / heads; the other classes cannot build it."""
    config = {**written_config("ernie4_5", shrunk_fields("ernie4_5", second=True)), "head_dim": None}
    spec = spec_of(config)
    assert spec.head_dim == 64 // 4
    assert total_params(spec) == measured(config)[0]


def test_hunyuan_moe_topk_list_of_one_value_is_that_top_k() -> None:
    """Per-layer lists of one value, and Hunyuan's checkpoint fields where they say what transformers builds."""
    config = written_config("hunyuan_v1_moe", shrunk_fields("hunyuan_v1_moe", second=True))
    listed = {**config, "moe_topk": [2, 2], "moe_intermediate_size": [96, 96], "num_shared_expert": [1, 1]}
    listed.update(use_cla=False, use_qk_norm=True, use_mixed_mlp_moe=True)  # Hunyuan's own fields, as built
    spec = spec_of(listed)
    assert spec.num_experts_per_tok == 2 and total_params(spec) == measured(listed)[0]
    assert any("moe_topk lists 2 for every layer" in note for note in spec.notes)


def test_cohere2_moe_first_k_dense_replace_without_layer_lists() -> None:
    """A config.json with first_k_dense_replace and no layer_types or mlp_layer_types: the dense prefix and its
    own window pattern, as Cohere2MoeConfig derives them (layer 0: prefix pattern 1, full; then three sliding,
    one full)."""
    given = {"model_type": "cohere2_moe", "hidden_size": 64, "intermediate_size": 96, "vocab_size": 128,
             "num_hidden_layers": 5, "num_attention_heads": 4, "num_key_value_heads": 2, "num_experts": 4,
             "first_k_dense_replace": 1, "sliding_window": 16, "pad_token_id": None, "bos_token_id": None,
             "eos_token_id": None}  # fmt: skip
    spec = spec_of(given)
    assert spec.mlp_layer_types == ("dense", "sparse", "sparse", "sparse", "sparse")
    assert spec.layer_windows() == (None, 16, 16, 16, None)
    assert total_params(spec) == measured(given)[0]
    fields = {k: v for k, v in given.items() if k != "model_type"}
    cache = transformers.DynamicCache(config=transformers.AutoConfig.for_model("cohere2_moe", **fields))
    assert [getattr(layer, "sliding_window", None) for layer in cache.layers] == list(spec.layer_windows())


# --- values not modelled: one line naming the field ------------------------------------------------------


REFUSED = [
    ("hunyuan_v1_dense", {"head_dim": None}, "head_dim"),  # transformers cannot build a null head_dim
    ("hunyuan_v1_moe", {"moe_topk": [1, 2]}, "moe_topk"),  # a top-k per layer
    ("hunyuan_v1_moe", {"num_experts": [4, 4]}, "num_experts"),  # transformers' experts take one count
    # checkpoint fields transformers does not read, with a value its model does not build
    ("hunyuan_v1_moe", {"use_cla": True}, "use_cla"),  # cross-layer KV sharing
    ("hunyuan_v1_moe", {"moe_intermediate_size": [16, 16]}, "moe_intermediate_size"),
    ("hunyuan_v1_moe", {"num_shared_expert": [2, 2]}, "num_shared_expert"),
    ("hunyuan_v1_dense", {"use_qk_norm": False}, "use_qk_norm"),
    ("ernie4_5", {"sliding_window": 16}, "sliding_window"),  # a window its attention does not read
    ("ernie4_5_moe", {"moe_layer_interval": 0}, "moe_layer_interval"),
    ("ernie4_5_moe", {"moe_layer_end_index": None}, "moe_layer_end_index"),
    ("granitemoe_swa", {"sliding_window": None}, "sliding_window"),  # transformers cannot run without one
    ("cohere2_moe", {"sliding_window": None}, "sliding_window"),
    ("exaone_moe", {"sliding_window": None, "layer_types": None}, "layer_types"),
    ("cohere2_moe", {"mlp_layer_types": ["dense", "moe", "sparse", "sparse"]}, "mlp_layer_types"),
    *(
        (t, {"head_dim": None}, "head_dim")
        for t in ("afmoe", "ernie4_5_moe", "cohere2_moe", "exaone_moe", "granitemoe_swa")
    ),
    ("afmoe", {"num_dense_layers": None}, "num_dense_layers"),
]


@pytest.mark.parametrize(("model_type", "change", "field"), REFUSED, ids=lambda v: str(v))
def test_an_unmodelled_value_is_refused_in_one_line(model_type: str, change: dict[str, Any], field: str) -> None:
    config = {**written_config(model_type, shrunk_fields(model_type, second=True)), **change}
    with pytest.raises(EstimatorError) as refused:
        spec_of(config)
    assert field in str(refused.value) and "\n" not in str(refused.value)

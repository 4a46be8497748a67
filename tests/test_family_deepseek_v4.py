"""Family deepseek_v4 (DeepSeek V4): shared-KV attention over a window plus compressed entries (CSA, HCA), hyper-
connections, hash-routed then top-k-routed experts.

By hand: the parameters and the cache of DeepseekV4Config's own defaults (the shape its docstring names,
deepseek-ai/DeepSeek-V4-Flash-Base; no verbatim public config.json was found, so none is used as one), written out
factor by factor. Against transformers 5.24 and peft: two small shapes' parameters on the meta device, peft's LoRA r=8
on all-linear, and the bytes of every tensor in the cache after a real forward pass at 3, 5, 37 and 300 tokens (before
a CSA window closes, at the tail of one, past the window of 16, past HCA windows); and the full-width attention of the
class defaults (4 layers) run forward on the meta device at 5, 300 and 1,001 tokens.

Conventions: parameters as transformers builds them (the checkpoint's multi-token-prediction layer is not built); LoRA
as peft adapts them (every nn.Linear, the grouped o_a_proj included; the fused experts are not converted); the cache as
transformers keeps it: w − 1 window keys, K = V one tensor on compressed layers, two on sliding ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from estimator.architecture import total_params
from estimator.errors import EstimatorError
from estimator.hf_config import spec_from_config, spec_from_hf_config
from estimator.kv import kv_cache_bytes
from estimator.layout import KVFormat, WindowCache
from estimator.units import DType

HELD = KVFormat(DType.bf16, window=WindowCache.window_minus_one)  # transformers' window: w − 1 tokens
SLIDING, CSA, HCA = "sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention"
# d 64, 4 layers (3 HCA, 1 CSA), H 4 of d_h 8, q rank 32, 8 groups of o rank 1,024, 4 experts of 96 (top 2), n 4,
# indexer 64 × 16, window 16, rates 4 and 128: the sweep's small config
TINY: dict[str, Any] = {
    "model_type": "deepseek_v4", "vocab_size": 512, "hidden_size": 64, "moe_intermediate_size": 96,
    "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 8, "q_lora_rank": 32,
    "n_routed_experts": 4, "num_experts_per_tok": 2, "index_head_dim": 16, "sliding_window": 16,
    "bos_token_id": None, "eos_token_id": None,
}  # fmt: skip
# sliding layers too, rates 2 and 8, n 2, 2 groups of 16, tied head, MLP biases, hash MLP not first
SECOND: dict[str, Any] = {
    **TINY, "layer_types": [SLIDING, HCA, CSA, SLIDING], "mlp_layer_types": ["moe", "hash_moe", "moe", "moe"],
    "compress_rates": {CSA: 2, HCA: 8}, "hc_mult": 2, "o_groups": 2, "o_lora_rank": 16, "index_n_heads": 4,
    "head_dim": 16, "sliding_window": 8, "tie_word_embeddings": True, "mlp_bias": True,
}  # fmt: skip


def spec_of(config: dict[str, Any]) -> Any:
    return spec_from_config(config, Path("config.json"))


def test_parameters_by_hand_on_the_class_defaults() -> None:
    """d 4,096, V 129,280, 43 layers (23 HCA, 20 CSA), H 64 × 512, q rank 1,024, 8 groups of 1,024, 256 experts of
    2,048, hc_mult 4, indexer 64 × 128, rates 4 and 128."""
    spec = spec_of({"model_type": "deepseek_v4"})
    d = 4096
    attention = d * 1024 + 1024 * 64 * 512 + d * 512 + (64 * 512 // 8) * (8 * 1024) + 8 * 1024 * d  # q_a q_b kv o_a o_b
    assert attention == 106_954_752
    small = 1024 + 512 + 64 + 2 * d  # q_a_norm, kv_norm, sinks, the two layer norms
    hyper = 2 * ((2 + 4) * 4 * 4 * d + (2 + 4) * 4 + 3)  # attn_hc and ffn_hc: fn, base, scale
    moe = 256 * d + 256 * (2 * 2048 * d + d * 2048) + 3 * d * 2048  # router, fused experts, shared MLP
    hca = 2 * d * 512 + 128 * 512 + 512  # kv and gate, position bias, norm
    indexer = 2 * d * 256 + 4 * 256 + 128 + 1024 * 64 * 128 + d * 64  # kv, gate, bias, norm, q_b, weights_proj
    csa = 2 * d * 1024 + 4 * 1024 + 512 + indexer
    outside = 2 * 129_280 * d + d + (4 * 4 * d + 4 + 1)  # embedding and head, final norm, hc_head
    expected = 43 * (attention + small + hyper + moe) + 23 * hca + 20 * csa + outside
    assert total_params(spec) == expected == 284_325_869_015  # = parameters() on the meta device (transformers 5.24)


def test_cache_by_hand_on_the_class_defaults() -> None:
    """T = 1,001, bf16, windows of 128 kept as 127. HCA: 127 · 512 · 2 (window) + 7 · 512 · 2 (⌊1,001 / 128⌋
    entries) + 105 · 2 · 512 · 2 (the tail, kv and gate) = 352,256; CSA: 127 · 512 · 2 + 250 · 640 · 2 + 1 · 2 · 2 ·
    640 · 2 + 4 · 640 · (2 + 4) (the overlap, its gate float32) = 470,528."""
    spec = spec_of({"model_type": "deepseek_v4"})
    hca = 127 * 512 * 2 + 7 * 512 * 2 + 105 * 2 * 512 * 2
    csa = 127 * 512 * 2 + 250 * 640 * 2 + 1 * 2 * 2 * 640 * 2 + 4 * 640 * 6
    assert (hca, csa) == (352_256, 470_528)
    assert kv_cache_bytes(spec, 1001, HELD) == 23 * hca + 20 * csa == 17_512_448


def test_the_legacy_names_read_as_transformers_folds_them() -> None:
    # compress_ratios per layer (0, 4, 128; a checkpoint's list may cover its MTP layer: cut), num_hash_layers
    legacy = {**SECOND, "layer_types": None, "mlp_layer_types": None, "compress_ratios": [0, 128, 4, 0, 4],
              "num_hash_layers": 1, "compress_rates": None, "compress_rate_csa": 2, "compress_rate_hca": 8}  # fmt: skip
    assert total_params(spec_of(legacy)) == total_params(spec_of(SECOND))
    for tokens in (5, 37):
        assert kv_cache_bytes(spec_of(legacy), tokens, HELD) == kv_cache_bytes(spec_of(SECOND), tokens, HELD)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"n_shared_experts": 2}, "n_shared_experts"),
        ({"attention_bias": True}, "attention_bias"),
        ({"compress_ratios": [128, 64, 4, 4]}, "compress_ratios"),
        ({"layer_types": [HCA, CSA]}, "layer_types"),
        ({"compress_rates": {"sliding_attention": 4}}, "compress_rates"),
        ({"o_groups": 3}, "o_groups"),
    ],
)
def test_what_it_does_not_model_is_refused_in_one_line(tmp_path: Path, changes: dict[str, Any], field: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**TINY, **changes}))
    with pytest.raises(EstimatorError, match=field) as error:
        spec_from_hf_config(path)
    assert "\n" not in str(error.value)


# --- against transformers and peft ---------------------------------------------------------------------------------
def _measured_cache(model: Any, tokens: int, device: str = "cpu") -> int:
    import torch

    from estimator.validate import measure

    with torch.no_grad():
        ids = torch.zeros((1, tokens), dtype=torch.long, device=device)
        cache = model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
    return sum(sum(measure.layer_cache_bytes(layer)) for layer in cache.layers)


@pytest.mark.validation
@pytest.mark.parametrize("config", [TINY, SECOND], ids=["tiny", "second"])
def test_parameters_lora_and_cache_equal_transformers(config: dict[str, Any]) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    from estimator.layout import ExpertLayout
    from estimator.stores.kinds import peft_target_modules
    from estimator.stores.targets import lora_params, resolve_targets
    from estimator.validate import measure

    from .test_config_defaults import measured, peft_lora

    spec = spec_of(config)
    params, model = measured(config)
    assert total_params(spec) == params
    targets = resolve_targets(spec, "all-linear", ExpertLayout.fused)
    assert lora_params(targets, 8) == peft_lora(model, peft_target_modules(targets, spec))
    torch.manual_seed(0)
    real = measure.build_from_config(config, device="cpu", dtype=torch.bfloat16)
    for tokens in (3, 5, 37, 300):
        assert kv_cache_bytes(spec, tokens, HELD) == _measured_cache(real, tokens), tokens


@pytest.mark.validation
def test_full_width_cache_equals_transformers_on_the_meta_device() -> None:
    """The class defaults' attention at full width (d 4,096, 512, indexer 64 × 128, window 128, rates 4 and 128) in 4
    layers (3 HCA, 1 CSA), 4 experts: the forward runs on meta tensors (true shapes, no memory; the batched experts
    avoid the data-dependent routing loop)."""
    torch = pytest.importorskip("torch")
    from estimator.validate import measure

    config = {
        "model_type": "deepseek_v4",
        "num_hidden_layers": 4,
        "n_routed_experts": 4,
        "num_experts_per_tok": 2,
        "vocab_size": 128,
    }
    spec = spec_of(config)
    model = measure.build_from_config(config, device="meta", dtype=torch.bfloat16)
    model.config._experts_implementation = "batched_mm"
    for tokens in (5, 300, 1001):
        assert kv_cache_bytes(spec, tokens, HELD) == _measured_cache(model, tokens, "meta"), tokens


def test_the_sweep_equals_the_estimate_at_every_token() -> None:
    """The numpy sweep takes each T's exact total where a layer's cache is not linear in T (floor and mod)."""
    from estimator.sweep import kv_cache_bytes_array

    spec = spec_of({"model_type": "deepseek_v4"})
    tokens = [1, 3, 4, 5, 127, 128, 129, 1001, 10**6]
    assert kv_cache_bytes_array(spec, tokens, HELD).tolist() == [kv_cache_bytes(spec, t, HELD) for t in tokens]

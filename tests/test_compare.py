"""The headline query: the published Fermi estimate, made exact."""

from __future__ import annotations

import pytest

from estimator import estimate, load_spec
from estimator.errors import EstimatorError
from estimator.kv import kv_cache_bytes
from estimator.present.records import estimate_record
from estimator.specs import ModelSpec
from estimator.stores.targets import lora_bytes, resolve_targets
from estimator.units import DType
from estimator.zoo import load_all_specs


def test_llama3_70b_100k_rank32(llama3_70b: ModelSpec) -> None:
    est = estimate(llama3_70b, tokens=100_000, rank=32)
    assert est.params == 70_553_706_496
    assert est.kv_bytes_per_token == 327_680
    assert est.kv_cache_bytes == 32_768_000_000
    assert est.lora_params == 414_187_520
    assert est.lora_bytes == 828_375_040
    assert est.lora_bytes_per_token == 8_283.7504
    assert est.kv_to_lora_bytes_ratio == pytest.approx(327_680 / 8_283.7504, rel=1e-15)
    assert round(est.kv_to_lora_bytes_ratio, 1) == 39.6
    assert est.weights_bytes == 141_107_412_992
    assert est.pretraining_bytes_per_token == 141_107_412_992 / 15e12
    assert round(est.pretraining_bytes_per_token or 0, 4) == 0.0094
    # Crossover: ceil(828,375,040 / 327,680) = ceil(2527.97) = 2,528 tokens.
    assert est.crossover_tokens == 2_528
    # Parity: ceil(32,768,000,000 / (828,375,040 / 32)) = ceil(1265.8) = 1,266.
    assert est.parity_rank == 1_266
    assert est.parity_lora_params == 1_266 * 414_187_520 // 32
    assert round(est.parity_fraction_of_model_params, 3) == 0.232


def test_pretraining_override_and_missing(llama3_70b: ModelSpec) -> None:
    est = estimate(llama3_70b, 100_000, pretraining_tokens=10**12)
    assert est.pretraining_bytes_per_token == 141_107_412_992 / 1e12
    mistral = estimate(load_spec("mistral-7b-v0.3"), 100_000)
    assert mistral.pretraining_bytes_per_token is None


@pytest.mark.parametrize("spec", load_all_specs(), ids=lambda s: s.name)
@pytest.mark.parametrize("rank", [1, 8, 32])
def test_crossover_and_parity_are_the_smallest_such(spec: ModelSpec, rank: int) -> None:
    est = estimate(spec, tokens=100_000, rank=rank)
    adapter = est.lora_bytes
    if est.crossover_tokens is not None:
        c = est.crossover_tokens
        assert kv_cache_bytes(spec, c, DType.bf16) >= adapter
        assert c == 1 or kv_cache_bytes(spec, c - 1, DType.bf16) < adapter
    targets = resolve_targets(spec, "all-linear")
    p = est.parity_rank
    assert lora_bytes(targets, p, DType.bf16) >= est.kv_cache_bytes
    assert p == 1 or lora_bytes(targets, p - 1, DType.bf16) < est.kv_cache_bytes


def test_crossover_never_when_windows_cap_the_cache() -> None:
    phi = load_spec("phi3-mini")  # cache capped at 2047 tokens × 393,216 bytes = 804,913,152 bytes
    assert estimate(phi, 100_000, rank=32).crossover_tokens == 256
    assert estimate(phi, 100_000, rank=300).crossover_tokens is None


def test_ratio_falls_as_one_over_tokens(llama3_70b: ModelSpec) -> None:
    """The r = 32 LoRA (828,375,040 bytes) against 327,680 bytes per token: 3.96 at 10k, 395.6 at 1M."""
    small = estimate(llama3_70b, 10_000)
    large = estimate(llama3_70b, 1_000_000)
    assert small.kv_to_lora_bytes_ratio == pytest.approx(327_680 * 10_000 / 828_375_040, rel=1e-15)
    assert large.kv_to_lora_bytes_ratio == pytest.approx(327_680 * 1_000_000 / 828_375_040, rel=1e-15)


@pytest.mark.parametrize("rank", [0, -1])
def test_bad_rank(llama3_70b: ModelSpec, rank: int) -> None:
    with pytest.raises(EstimatorError, match="at least 1"):
        estimate(llama3_70b, 100_000, rank=rank)


def test_to_dict_names_units(llama3_70b: ModelSpec) -> None:
    data = estimate_record(estimate(llama3_70b, 100_000))
    assert data["kv_cache"]["bytes_per_token"] == 327_680
    assert data["lora"]["params"] == 414_187_520
    assert data["crossover_tokens"] == 2_528
    assert data["parity_rank"] == 1_266

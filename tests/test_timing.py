"""Time on an accelerator: the roofline of each phase, by hand from the configs and the datasheet numbers."""

from __future__ import annotations

import json

import pytest

from estimator.accelerators import accelerator
from estimator.compare import estimate
from estimator.cost import breakeven
from estimator.kv import kv_cache_bytes
from estimator.layout.formats import KVFormat
from estimator.timing import Serving, breakeven_time, cache_bytes_summed, weights_read_bytes
from estimator.units import DType
from estimator.zoo import load_spec

from .test_cli import run

H100_FLOPS, H100_BYTES_PER_S = 989_400_000_000_000, 3_350_000_000_000
LLAMA3_70B_NF = 69_503_033_344  # forward matmul parameters (70,553,706,496 less the 128,256 × 8,192 embedding)


def test_decoding_after_a_long_context_is_memory_bound() -> None:
    """Llama 3 70B, bf16, one token after 100,000: it reads 139.0 GB of weights and the 32.8 GB cache."""
    spec = load_spec("llama3-70b")
    phase = Serving(spec, KVFormat(), DType.bf16).decode(100_000, 1)
    assert phase.bytes == LLAMA3_70B_NF * 2 + 327_680 * 100_001
    assert phase.flops == 2 * LLAMA3_70B_NF + 80 * 2 * (64 * 256) * 100_001  # QKᵀ and A·V over 100,001 keys
    h100 = accelerator("h100-sxm")
    assert phase.seconds(h100) == phase.bytes / H100_BYTES_PER_S == pytest.approx(0.0513, abs=5e-5)
    assert phase.bound(h100) == "memory" and phase.flops / H100_FLOPS < phase.seconds(h100) / 100


def test_a_prefill_is_compute_bound_and_reads_every_expert() -> None:
    spec = load_spec("deepseek-v3")  # 671B parameters, 37.6B active: decode reads the routed experts only
    every = weights_read_bytes(spec, DType.bf16, every_expert=True)
    routed = weights_read_bytes(spec, DType.bf16, every_expert=False)
    embedding = 129_280 * 7_168
    assert every == (671_026_404_352 - embedding) * 2 and routed == (37_552_282_624 - embedding) * 2
    phase = Serving(load_spec("llama3-70b"), KVFormat(), DType.bf16).prefill(0, 4_096)
    assert phase.bound(accelerator("h100-sxm")) == "compute"


@pytest.mark.parametrize("name", ["gemma3-1b", "mistral-7b-v0.1", "llama3-8b"])
def test_summed_cache_equals_the_sum_of_caches(name: str) -> None:
    spec, fmt = load_spec(name), KVFormat()
    for first, last in ((1, 1), (500, 530), (4_090, 4_110), (30_000, 30_003)):
        assert cache_bytes_summed(spec, first, last, fmt) == sum(
            kv_cache_bytes(spec, n, fmt) for n in range(first, last + 1)
        )


def test_breakeven_in_time_on_the_default_h100(capsys: pytest.CaptureFixture[str]) -> None:
    """Llama 3 70B, 100k, r = 32: each cached query decodes 100 tokens over the 32.77 GB cache, so fine-tuning
    pays back after 3 queries in time, though after 51 in FLOPs."""
    est = estimate(load_spec("llama3-70b"), 100_000, 32)
    times = breakeven_time(breakeven(est), accelerator("h100-sxm"))
    assert times.queries_prefix_cached == 3 and times.in_context_decode_bound == "memory"
    code, out, _ = run(capsys, "breakeven", "--model", "llama3-70b", "--json")
    data = json.loads(out)
    assert code == 0 and data["accelerator"] == "h100-sxm" and data["breakeven_queries_prefix_cached_by_time"] == 3
    assert data["at_capacity_exposures"]["exposures"] == 1_000 and data["at_capacity_exposures"]["epochs"] == 1_000
    assert data["at_capacity_exposures"]["finetune_once_flops"] == 1_000 * data["finetune_once_flops"]
    code, out, _ = run(capsys, "breakeven", "--model", "llama3-70b", "--accelerator", "mi300x")
    assert "AMD Instinct MI300X" in out and "1,000 exposures" in out
    code, _, err = run(capsys, "breakeven", "--model", "llama3-70b", "--accelerator", "h100")
    assert code == 2 and "did you mean" in err


def test_one_query_is_singular_and_none_is_from_the_start(capsys: pytest.CaptureFixture[str]) -> None:
    """GPT-2 at 1k pays back in time after 1 query; at 100k (past its 1,024 window) fine-tuning costs less than
    prefilling the context, so the prefix-cached break-even is 0 queries."""
    _, text, _ = run(capsys, "breakeven", "--model", "gpt2", "--tokens", "1k")
    assert "in time, after 1 query and" in text and "1 queries" not in text
    code, out, _ = run(capsys, "breakeven", "--model", "gpt2", "--tokens", "100k", "--json")
    assert code == 0 and json.loads(out)["breakeven_queries_prefix_cached"] == 0
    _, text, _ = run(capsys, "breakeven", "--model", "gpt2", "--tokens", "100k")
    assert "from the start" in text and "after 0 queries" not in text

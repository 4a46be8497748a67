"""`estimate breakeven` on a deployment: the smallest tensor-parallel size whose vLLM pool holds the batch
(as `serve-memory` plans it), stated first; batched decode; cumulative totals after N queries; both
exposure regimes; options the command would ignore refused.

By hand, Llama 3 70B in bf16 (80 layers, 8 KV heads of 128, 70,553,706,496 parameters, 141,107,412,992
weight bytes), 100,000 context + 100 question + 100 answer = 100,200 tokens, on H100 SXM (79.19 GiB as
torch reports it, 3.35 TB/s, 989.4 TFLOP/s bf16 dense):
- one sequence's cache per GPU at t GPUs: 2 · 80 · (8 / t) · 128 · 2 bytes · ⌈100,200 / 16⌉ · 16 tokens:
  t = 2: 163,840 · 100,208 = 16,418,078,720 bytes; t = 4: 81,920 · 100,208 = 8,209,039,360 bytes;
- vLLM's budget is 0.9 · 79.19 GiB = 71.27 GiB per GPU; the weights' shard alone at t = 2 is
  141,107,412,992 / 2 bytes = 65.71 GiB, so the pool is below 5.56 GiB < 15.29 GiB: t = 2 cannot hold one
  sequence (t = 1 holds not even the weights); t = 4 does;
- decoding one token after 100,100 tokens reads the weights the forward pass multiplies by (N_f =
  69,503,033,344 parameters, 139,006,066,688 bytes) and the cache of 100,101 tokens (327,680 each):
  171,807,162,368 bytes, on 4 GPUs as one roofline 171,807,162,368 / (4 · 3.35e12) s = 12.8 ms.
"""

from __future__ import annotations

import json

import pytest

from .test_cli import run

GIB = 2**30
WEIGHTS_BYTES = 70_553_706_496 * 2
READ_WEIGHTS_BYTES = 69_503_033_344 * 2
KV_PER_TOKEN = 2 * 80 * 8 * 128 * 2  # 327,680
BANDWIDTH = 3_350_000_000_000
BUDGET = 0.9 * 79.19 * GIB


def sequence_flops(n: int) -> int:
    """2 · N_f · n + L · H · (d_qk + d_v) · n (n + 1): Llama 3 70B, no windows."""
    return 2 * 69_503_033_344 * n + 80 * 64 * 256 * n * (n + 1)


def test_the_smallest_deployment_that_holds_the_batch(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "breakeven", "--model", "llama3-70b", "--tokens", "100k", "--json")
    assert code == 0, err
    data = json.loads(out)
    deployment = data["deployment"]
    assert BUDGET - WEIGHTS_BYTES / 2 < 16_418_078_720  # t = 2 cannot hold one sequence, by hand
    assert (deployment["gpus"], deployment["chosen"], deployment["batch"]) == (4, "smallest that fits", 1)
    assert deployment["sequence_tokens"] == 100_200
    assert deployment["sequence_bytes_per_gpu"] == 81_920 * 100_208 == 8_209_039_360
    assert deployment["sequence_bytes_per_gpu"] <= deployment["pool_bytes_per_gpu"] < BUDGET - WEIGHTS_BYTES / 4
    decode_bytes = READ_WEIGHTS_BYTES + KV_PER_TOKEN * 100_101
    assert data["in_context_decode_seconds_per_token"] == pytest.approx(decode_bytes / (4 * BANDWIDTH), rel=1e-12)
    code, out, _ = run(capsys, "serve-memory", "--model", "llama3-70b", "--tokens", "100200", "--tp", "4", "--json")
    assert deployment["pool_bytes_per_gpu"] == json.loads(out)["pools"][0]["kv_pool_bytes"]  # as serve-memory plans it
    code, out, _ = run(capsys, "breakeven", "--model", "llama3-70b", "--tokens", "100k")
    first = out.splitlines()[0]
    assert first.startswith("Llama 3 70B (llama3-70b): 100,000 tokens of text in every prompt, or trained in once; ")
    assert "served on 4 × NVIDIA H100 SXM5 80GB in tensor parallel (the smallest of 1, 2, 4, 8 GPUs" in first
    assert first.endswith("batch 1")


def test_a_given_deployment_that_cannot_hold_the_batch_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "breakeven", "--model", "llama3-70b", "--tokens", "100k", "--tp", "2")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(
        "error: Llama 3 70B does not fit 1 in-context query of 100,200 tokens on 2 × NVIDIA H100 SXM5 80GB"
    )
    assert f"the batch needs {16_418_078_720 / GIB:,.2f} GiB" in err  # 15.29
    code, out, _ = run(capsys, "breakeven", "--model", "llama3-70b", "--tokens", "100k", "--gpus", "8", "--json")
    assert code == 0 and json.loads(out)["deployment"]["gpus"] == 8
    assert json.loads(out)["deployment"]["sequence_bytes_per_gpu"] == 40_960 * 100_208  # one KV head per GPU


def test_batched_decode_shares_the_weights_not_the_cache(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "breakeven", "--model", "llama3-70b", "--tokens", "100k", "--batch", "4", "--json")
    data = json.loads(out)
    assert code == 0 and data["deployment"]["batch"] == 4 and data["batch"] == 4
    step = READ_WEIGHTS_BYTES + 4 * KV_PER_TOKEN * 100_101  # one step of 4 sequences
    gpus = data["deployment"]["gpus"]
    assert data["in_context_decode_seconds_per_token"] == pytest.approx(step / (gpus * BANDWIDTH), rel=1e-12)
    code, one, _ = run(capsys, "breakeven", "--model", "llama3-70b", "--tokens", "100k", "--tp", str(gpus), "--json")
    single = json.loads(one)
    # per query, batching saves the weights' reads only: the cache dominates, so less than the 4x of a short context
    saving = single["in_context_query_seconds"] / data["in_context_query_seconds"]
    assert 1 < saving < 2


def test_cumulative_totals_and_both_exposure_regimes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "breakeven", "--model", "llama3-70b", "--tokens", "50k", "--queries", "10k", "--json")
    data = json.loads(out)
    assert code == 0
    per_query = sequence_flops(50_200)
    assert data["in_context_query_flops"] == per_query
    after = data["after_queries"]
    assert after["queries"] == 10_000 and after["in_context_flops"] == 10_000 * per_query
    assert after["in_context_seconds"] == pytest.approx(10_000 * data["in_context_query_seconds"], rel=1e-12)
    context = sequence_flops(50_000)
    assert after["in_context_prefix_cached_flops"] == context + 10_000 * (per_query - context)
    many = data["at_capacity_exposures"]
    assert (
        after["fine_tuned_1_exposures_flops"] == data["finetune_once_flops"] + 10_000 * data["fine_tuned_query_flops"]
    )
    assert (
        after["fine_tuned_1000_exposures_flops"]
        == many["finetune_once_flops"] + 10_000 * data["fine_tuned_query_flops"]
    )
    # the numbers (checked there by hand): 1 epoch 2 and 177 queries; 1,000 exposures 1,446 and 568,524
    assert (data["breakeven_queries"], data["breakeven_queries_prefix_cached"]) == (2, 177)
    assert (many["breakeven_queries"], many["breakeven_queries_prefix_cached"]) == (1_446, 568_524)
    code, out, _ = run(capsys, "breakeven", "--model", "llama3-70b", "--tokens", "50k", "--queries", "10k")
    header = next(line for line in out.splitlines() if "FLOPs once" in line)
    assert "FLOPs, 10,000 queries" in header and "time, 10,000 queries" in header
    assert "1,000 epochs (1,000 exposures)" in out


def test_a_model_no_node_holds_names_the_size_that_would(capsys: pytest.CaptureFixture[str]) -> None:
    """DeepSeek-V3 in bf16: at least 671e9 · 2 bytes over 16 GPUs = 83.9 GB = 78.1 GiB of weights per GPU, more
    than vLLM's 0.9 · 79.19 = 71.27 GiB budget, so neither 8 nor 16 H100s hold it; 32 do."""
    assert BUDGET < 671e9 * 2 / 16
    code, out, err = run(capsys, "breakeven", "--model", "deepseek-v3", "--tokens", "100k")
    assert code == 2 and out == ""
    assert err == (
        "error: DeepSeek-V3 fits 1 in-context query of 100,200 tokens on none of 1, 2, 4, 8 × NVIDIA H100 SXM5 80GB; "
        "give --tp 32 (across nodes), a smaller --batch, --weights-dtype fp8 or a larger --accelerator\n"
    )
    code, out, _ = run(capsys, "breakeven", "--model", "deepseek-v3", "--tokens", "100k", "--tp", "32", "--json")
    assert code == 0 and json.loads(out)["deployment"]["gpus"] == 32


@pytest.mark.parametrize(
    "args",
    [
        ["breakeven", "--model", "llama3-70b", "--methods", "dora"],
        ["breakeven", "--model", "llama3-70b", "--virtual-tokens", "5"],
        ["breakeven", "--model", "llama3-70b", "--loreft-rank", "4"],
        ["breakeven", "--model", "llama3-70b", "--pretraining-tokens", "1T"],
        ["--methods", "dora", "breakeven", "--model", "llama3-70b"],
        ["breakeven", "--model", "llama3-70b", "--batch", "0"],
        ["breakeven", "--model", "llama3-70b", "--tp", "0"],
        ["breakeven", "--model", "llama3-70b", "--queries", "lots"],
    ],
)
def test_options_breakeven_would_ignore_are_refused(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1

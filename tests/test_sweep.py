"""Vectorised sweeps: every array equals the scalar formulas (the definitions) point by point."""

from __future__ import annotations

import csv
import doctest
import io
from dataclasses import replace

import numpy as np
import pytest

import estimator.sweep
from estimator.compare import crossover_tokens, estimate, parity_rank
from estimator.errors import EstimatorError
from estimator.kv import KVFormat, MlaCache, WindowCache, kv_cache_bytes
from estimator.specs import ModelSpec
from estimator.stores.targets import lora_bytes, lora_params
from estimator.sweep import across_models, kv_cache_bytes_array, sweep
from estimator.units import DType, parse_grid
from estimator.zoo import load_all_specs, load_spec

TOKENS = [1, 7, 511, 512, 513, 1_023, 1_024, 1_025, 4_095, 4_096, 4_097, 100_000, 131_072, 10**6, 10**9]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1k,10k,100k", (1_000, 10_000, 100_000)),
        ("100k,1k,1k", (1_000, 100_000)),
        ("1k:1B:log7", (10**3, 10**4, 10**5, 10**6, 10**7, 10**8, 10**9)),
        ("1:8192:x2", tuple(2**i for i in range(14))),
        ("1:10:x3", (1, 3, 9)),
        ("0.5k:2.5k:lin5", (500, 1_000, 1_500, 2_000, 2_500)),
        ("1:4:log20", (1, 2, 3, 4)),  # rounded to whole numbers, repeats dropped
        ("5:5:log3", (5,)),
    ],
)
def test_parse_grid(text: str, expected: tuple[int, ...]) -> None:
    assert parse_grid(text) == expected


def test_log_grid_keeps_its_ends_exactly() -> None:
    grid = parse_grid("1k:1B:log20")
    assert grid[0] == 1_000 and grid[-1] == 10**9 and len(grid) == 20
    ratios = np.diff(np.log10(grid))
    assert np.allclose(ratios, 6 / 19, atol=1e-3)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "no tokens given"),
        ("1k:1B", "cannot read the tokens grid"),
        ("1k:1B:log", "cannot read the step"),
        ("1k:1B:x1", "cannot read the step"),
        ("1k:1B:geo5", "cannot read the step"),
        ("1B:1k:log5", "runs backwards"),
        ("1k:2k:log100000000", "too many"),
        ("ten", "cannot read token count"),
        ("0:10:lin5", "must be positive"),
    ],
)
def test_parse_grid_errors(text: str, needle: str) -> None:
    with pytest.raises(EstimatorError, match=needle):
        parse_grid(text)


FORMATS = [
    KVFormat(DType.bf16),
    KVFormat(DType.int4, group_size=64),
    KVFormat(DType.fp8, window=WindowCache.window_minus_one),
    KVFormat(DType.bf16, mla=MlaCache.expanded),
]


@pytest.mark.parametrize("spec", load_all_specs(), ids=lambda s: s.name)
def test_kv_array_equals_the_scalar_formula(spec: ModelSpec) -> None:
    for kv in FORMATS:
        array = kv_cache_bytes_array(spec, TOKENS, kv)
        assert array.tolist() == [float(kv_cache_bytes(spec, t, kv)) for t in TOKENS], (spec.name, kv)


def test_sweep_equals_estimate_at_every_point() -> None:
    spec = load_spec("gemma3-27b")  # windows: the ratio is not linear in T
    base = estimate(spec, 100_000, 32)
    tokens, ranks = [1_000, 1_024, 5_000, 100_000, 10**7], [1, 8, 32, 100, 5_376]
    data = sweep(base, tokens, ranks)
    for i, rank in enumerate(ranks):
        assert data.lora_params[i] == lora_params(base.targets, rank)
        assert data.lora_bytes[i] == lora_bytes(base.targets, rank, DType.bf16)
        for j, t in enumerate(tokens):
            point = estimate(spec, t, rank, allow_beyond_full_rank=True)  # the sweep marks such ranks
            assert data.kv_cache_bytes[j] == point.kv_cache_bytes
            assert data.kv_to_lora_bytes_ratio[i, j] == point.kv_to_lora_bytes_ratio
            assert data.lora_bytes_per_token[i, j] == point.lora_bytes_per_token
    assert data.parity_rank.tolist() == [
        parity_rank(base.targets, kv_cache_bytes(spec, t, base.kv), DType.bf16) for t in tokens
    ]
    assert data.crossover_tokens() == [
        crossover_tokens(spec, lora_bytes(base.targets, r, DType.bf16), base.kv) for r in ranks
    ]


def test_llama3_70b_by_hand() -> None:
    """2 · 80 · 8 · 128 · 2 B = 327,680 B per token; LoRA r = 8: 8 · 12,943,360 · 2 B = 207,093,760 B."""
    base = estimate(load_spec("llama3-70b"), 100_000, 32)
    data = sweep(base, [10**6, 10**9], [8, 32])
    assert data.kv_cache_bytes.tolist() == [327_680 * 10**6, 327_680 * 10**9]
    assert data.lora_bytes.tolist() == [207_093_760, 828_375_040]
    assert data.kv_to_lora_bytes_ratio[0, 0] == 327_680 * 10**6 / 207_093_760  # 1,582.3x
    per_rank_bits = 12_943_360 * 16  # LoRA bits at rank 1
    assert data.parity_rank.tolist() == [-(-327_680 * t * 8 // per_rank_bits) for t in (10**6, 10**9)]
    assert data.parity_rank.tolist() == [12_659, 12_658_228]
    assert data.crossover_tokens() == [632, 2_528]  # ⌈207,093,760 / 327,680⌉, ⌈828,375,040 / 327,680⌉


def test_columns_and_frame() -> None:
    base = estimate(load_spec("llama3-8b"), 100_000, 32)
    data = sweep(base, parse_grid("1k:1M:log4"), [8, 32, 4_096])
    columns = data.columns()
    assert {len(v) for v in columns.values()} == {12}
    frame = data.to_frame()
    assert list(frame.columns) == list(columns)
    row = frame[(frame["tokens"] == 10_000) & (frame["rank"] == 32)].iloc[0]
    point = estimate(load_spec("llama3-8b"), 10_000, 32)
    assert row["kv_cache_bytes"] == point.kv_cache_bytes
    assert row["lora_bytes"] == point.lora_bytes
    assert row["kv_to_lora_bytes_ratio"] == point.kv_to_lora_bytes_ratio
    assert row["pretraining_bytes_per_token"] == point.pretraining_bytes_per_token
    assert frame["beyond_full_rank"].tolist() == [False] * 8 + [True] * 4  # k/v of Llama 3 8B are 4,096 -> 1,024


def test_no_pretraining_column_without_a_count() -> None:
    data = sweep(estimate(load_spec("mistral-7b-v0.1"), 1_000, 8), [1_000], [8])
    assert "pretraining_bytes_per_token" not in data.columns()


def test_sweep_rejects_empty_or_non_positive() -> None:
    base = estimate(load_spec("gpt2"), 1_000, 8)
    with pytest.raises(ValueError, match="positive"):
        sweep(base, [], [8])
    with pytest.raises(ValueError, match="positive"):
        sweep(base, [1_000], [0])


def test_across_models_says_what_it_skipped() -> None:
    base = estimate(load_spec("llama3-8b"), 100_000, 16, "qv")
    done, skipped = across_models(base, [load_spec("llama3-8b"), load_spec("phi3-mini")])
    assert [e.spec.name for e in done] == ["llama3-8b"]
    assert done[0].lora_params == 32 * 16 * ((4096 + 4096) + (4096 + 1024)) == 6_815_744  # q and v, r = 16
    assert [s.name for s, _ in skipped] == ["phi3-mini"] and "qkv" in skipped[0][1]


def test_fp32_adapter_and_int4_cache_are_carried() -> None:
    spec = load_spec("qwen2.5-7b")
    kv = KVFormat(DType.int4, group_size=32, zero_point=False)
    base = estimate(spec, 50_000, 16, kv_dtype=kv, adapter_dtype=DType.fp32)
    data = sweep(base, [50_000], [16])
    assert data.kv_to_lora_bytes_ratio[0, 0] == base.kv_to_lora_bytes_ratio
    # all-linear: 28 layers of q, o (3,584 <-> 3,584), k, v (3,584 -> 512), gate, up, down (3,584 <-> 18,944); fp32
    assert data.lora_bytes[0] == 16 * 28 * (2 * (3584 + 3584) + 2 * (3584 + 512) + 3 * (3584 + 18944)) * 4
    assert replace(kv) == base.kv


def test_doctest() -> None:
    assert doctest.testmod(estimator.sweep).failed == 0


def test_sweep_says_where_the_cache_holds_the_text(capsys: pytest.CaptureFixture[str]) -> None:
    """Mistral 7B v0.1 windows every layer at 4,096: past it the rate, ratio and parity rank are blank;
    its context window is 32,768 tokens. Held and state columns computed by hand."""
    from estimator.cli import main

    code = main(["sweep", "--model", "mistral-7b-v0.1", "--tokens", "1k,4096,8k,1M", "--rank", "32", "--csv"])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert code == 0
    assert [r["tokens_held"] for r in rows] == ["1000", "4096", "4096", "4096"]
    assert [r["holds_all_tokens"] for r in rows] == ["True", "True", "False", "False"]
    assert [r["beyond_context_window"] for r in rows] == ["False", "False", "False", "True"]
    assert [r["kv_bytes_per_token"] for r in rows] == ["131072.0", "131072.0", "", ""]
    assert rows[2]["kv_to_lora_bytes_ratio"] == rows[2]["parity_rank"] == ""
    assert rows[3]["kv_cache_bytes"] == str(4_096 * 131_072) and rows[3]["kv_state_bytes"] == "0"
    assert rows[3]["lora_bytes_per_token"] == str(83_886_080 * 2 / 1_000_000)  # the adapter's rate stands


def test_ratios_beyond_two_to_the_53_are_rounded_once() -> None:
    """DeepSeek-V2-Lite at 3.49e12 tokens, int8 expanded cache (groups of 64, no zero point), r = 1: a
    497,876,648,737,834,080-byte cache over a 36,229,632-byte LoRA. Converting the cache to float64 before
    dividing rounded twice and missed the last bit (hypothesis found it)."""
    from estimator.sweep import exact_ratio

    kv, lora = 497_876_648_737_834_080, 36_229_632
    assert float(np.float64(kv) / np.float64(lora)) != kv / lora  # the double rounding the fix avoids
    assert exact_ratio(np.array([kv], dtype=np.int64), np.array([lora], dtype=np.int64))[0] == kv / lora
    fmt = KVFormat(DType.int8, 64, False, MlaCache.expanded)
    base = estimate(load_spec("deepseek-v2-lite"), 1, 1, methods=("kv", "lora"), kv_dtype=fmt)
    grid = sweep(base, [3_492_400_734_693], [1])
    assert (int(grid.kv_cache_bytes[0]), int(grid.lora_bytes[0])) == (kv, lora)
    assert grid.kv_to_lora_bytes_ratio[0, 0] == kv / lora and grid.kv_bytes_per_token[0] == kv / 3_492_400_734_693


def test_beyond_the_context_window_only_where_the_model_has_one() -> None:
    """Llama 3 8B's config.json has max_position_embeddings 8,192; Mamba 2.8B has none (its family records
    10^12 for "no limit of its own"), so no token count is past it, however large."""
    llama = sweep(estimate(load_spec("llama3-8b"), 1_000, 8), [8_192, 8_193], [8])
    assert llama.beyond_context_window.tolist() == [False, True]
    mamba = sweep(estimate(load_spec("mamba-2.8b"), 1_000, 8), [10**12 + 1], [8])
    assert mamba.beyond_context_window.tolist() == [False]

from __future__ import annotations

import pytest

from estimator.errors import EstimatorError
from estimator.units import (
    DType,
    bits_to_bytes,
    format_bytes,
    format_number,
    format_tokens_short,
    parse_dtype,
    parse_tokens,
)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("100k", 100_000),
        ("100K", 100_000),
        ("1.5M", 1_500_000),
        ("1.5m", 1_500_000),
        ("2B", 2_000_000_000),
        ("2b", 2_000_000_000),
        ("15T", 15_000_000_000_000),
        ("1e5", 100_000),
        ("1E5", 100_000),
        ("100_000", 100_000),
        ("100000", 100_000),
        ("2.5e3k", 2_500_000),
        (" 7 ", 7),
        ("0.5k", 500),
    ],
)
def test_parse_tokens_accepts_the_documented_forms(text: str, tokens: int) -> None:
    assert parse_tokens(text) == tokens


@pytest.mark.parametrize("text", ["0", "-5", "abc", "", "k", "1.2345k", "1e-3", "0.1", "10x", "1,000", "--1"])
def test_parse_tokens_rejects_with_one_line(text: str) -> None:
    with pytest.raises(EstimatorError) as info:
        parse_tokens(text)
    assert "\n" not in str(info.value)
    assert repr(text) in str(info.value)


def test_parse_tokens_is_exact_for_large_decimals() -> None:
    # 1.1T in binary floating point is 1099999999999.9999; decimal arithmetic keeps it whole.
    assert parse_tokens("1.1T") == 1_100_000_000_000
    assert parse_tokens("15.6T") == 15_600_000_000_000


@pytest.mark.parametrize(
    ("text", "dtype", "bits"),
    [
        ("bf16", DType.bf16, 16),
        ("BFloat16", DType.bf16, 16),
        ("fp32", DType.fp32, 32),
        ("float16", DType.fp16, 16),
        ("fp8", DType.fp8, 8),
        ("int8", DType.int8, 8),
    ],
)
def test_parse_dtype(text: str, dtype: DType, bits: int) -> None:
    assert parse_dtype(text) is dtype
    assert dtype.bits == bits


def test_parse_dtype_lists_valid_names() -> None:
    with pytest.raises(EstimatorError, match="fp32, bf16, fp16, fp8, int8"):
        parse_dtype("int3")


def test_bits_to_bytes_never_rounds() -> None:
    assert bits_to_bytes(16) == 2
    with pytest.raises(ValueError):
        bits_to_bytes(12)


def test_formatting() -> None:
    assert format_bytes(32_768_000_000) == "32.77 GB"
    assert format_bytes(32_768_000_000, iec=True) == "30.52 GiB"
    assert format_bytes(828_375_040) == "828.38 MB"
    assert format_bytes(512) == "512 B"
    assert format_number(8283.7504) == "8,283.75"
    assert format_number(327_680) == "327,680"
    assert format_number(0.0094071608) == "0.00941"
    assert format_tokens_short(100_000) == "100k"
    assert format_tokens_short(15_000_000_000_000) == "15T"
    assert format_tokens_short(1_500_000) == "1.5M"
    assert format_tokens_short(2_528) == "2,528"


def test_largest_fitting_by_bisection() -> None:
    from estimator.units import largest_fitting

    calls: list[int] = []

    def fits(n: int) -> bool:
        calls.append(n)
        return n * n <= 1000  # 31² = 961, 32² = 1,024

    assert largest_fitting(fits, 10**7) == 31 and len(calls) <= 1 + 24
    assert largest_fitting(lambda n: False, 100) == 0 and largest_fitting(lambda n: True, 100) == 100
    assert largest_fitting(lambda n: n <= 5, 100, low=7) == 6

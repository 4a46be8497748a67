"""Units: data types as bits, token counts as exact integers, and byte sizes as text.

Every quantity elsewhere is an int in base units (bits, bytes, parameters, tokens). This module
holds the only conversions: dtype names to bits, user text such as ``100k`` to tokens, and bytes
to SI (GB = 10^9 bytes) or IEC (GiB = 2^30 bytes) text for printing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum

from estimator.errors import EstimatorError

BITS_PER_BYTE = 8


class DType(StrEnum):
    """A storage type for weights, adapters or the KV cache; ``bits`` is its width per element."""

    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"
    fp8 = "fp8"
    int8 = "int8"
    int4 = "int4"
    int2 = "int2"

    @property
    def bits(self) -> int:
        return _DTYPE_BITS[self]


_DTYPE_BITS = {
    DType.fp32: 32,
    DType.bf16: 16,
    DType.fp16: 16,
    DType.fp8: 8,
    DType.int8: 8,
    DType.int4: 4,
    DType.int2: 2,
}
KV_DTYPES = tuple(DType)
STORAGE_DTYPES = (DType.fp32, DType.bf16, DType.fp16, DType.fp8, DType.int8)  # weights: whole bytes

# Names people type for the same types, including the torch_dtype strings of config.json.
_DTYPE_ALIASES = {
    "float32": DType.fp32,
    "float": DType.fp32,
    "bfloat16": DType.bf16,
    "float16": DType.fp16,
    "half": DType.fp16,
    "float8": DType.fp8,
    "float8_e4m3fn": DType.fp8,
    "float8_e5m2": DType.fp8,
}


def parse_dtype(text: str, what: str = "dtype", allowed: tuple[DType, ...] = STORAGE_DTYPES) -> DType:
    """Read a dtype name (``bf16``, ``bfloat16``, ``fp8`` ...); unknown names list the valid ones."""
    key = text.strip().lower()
    dtype = DType(key) if key in DType.__members__ else _DTYPE_ALIASES.get(key)
    if dtype is None or dtype not in allowed:
        valid = ", ".join(d.value for d in allowed)
        raise EstimatorError(f"unknown {what} {text!r}; use one of: {valid}")
    return dtype


def bits_to_bytes(bits: int) -> int:
    """Whole bytes in ``bits``; raises if the bits do not fill whole bytes (never rounds silently)."""
    whole, rest = divmod(bits, BITS_PER_BYTE)
    if rest:
        raise ValueError(f"{bits} bits is not a whole number of bytes")
    return whole


_SUFFIX_EXPONENTS = {"": 0, "k": 3, "m": 6, "b": 9, "g": 9, "t": 12}
_TOKENS_PATTERN = r"^\s*([0-9][0-9_]*)(?:\.([0-9_]*))?(?:e([+-]?[0-9]+))?\s*([kmbgt]?)\s*$"  # compiled on first use
MAX_COUNT = 10**18  # a quintillion: beyond any corpus; larger counts are refused, never wrapped or rounded


def parse_tokens(text: str, what: str = "token count", limit: int = MAX_COUNT) -> int:
    """Read a whole count: ``100k``, ``1.5M``, ``2B``, ``15T``, ``1e5``, ``100_000`` (suffixes any case).

    k = 10^3, M = 10^6, B (or G) = 10^9, T = 10^12. The result must be a whole number from 1 to
    ``limit``; arithmetic is on integers, so ``1.5M`` is exactly 1,500,000 and ``1e400`` is refused
    at once rather than computed.
    """
    match = re.match(_TOKENS_PATTERN, text, re.IGNORECASE)
    examples = "100k, 1.5M, 2B, 15T, 1e5 or 100_000" if what.startswith("token") else "8, 32 or 1k"
    fix = f"write a positive number such as {examples}"
    if not match:
        raise EstimatorError(f"cannot read {what} {text!r}; {fix}")
    whole, fraction, exponent, suffix = match.groups()
    fraction = (fraction or "").replace("_", "")
    digits = (whole.replace("_", "") + fraction).lstrip("0")
    if not digits:
        raise EstimatorError(f"{what} {text!r} must be positive; give at least 1")
    too_large = f"{what} {text!r} is more than {limit:,}; give at most that"
    not_whole = f"{what} {text!r} is not a whole number; give a whole number"
    if exponent is not None and len(exponent.lstrip("+-")) > 12:  # far beyond any bound, either way
        raise EstimatorError(not_whole if exponent.startswith("-") else too_large)
    shift = int(exponent or 0) + _SUFFIX_EXPONENTS[suffix.lower()] - len(fraction)
    if len(digits) + shift > len(str(limit)):  # certainly above the limit: refuse before computing
        raise EstimatorError(too_large)
    if shift < 0:
        if digits[shift:].strip("0"):
            raise EstimatorError(not_whole)
        value = int(digits[:shift] or "0")
    else:
        value = int(digits) * 10**shift
    if value > limit:
        raise EstimatorError(too_large)
    return value


def format_tokens_short(tokens: int) -> str:
    """``100000`` -> ``100k``, ``1500000`` -> ``1.5M``, ``15000000000000`` -> ``15T``; exact, else the
    full integer with separators."""
    for suffix, scale in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("k", 10**3)):
        if tokens >= scale and tokens % (scale // 10) == 0:
            whole, tenths = divmod(tokens // (scale // 10), 10)
            return f"{whole}{suffix}" if tenths == 0 else f"{whole}.{tenths}{suffix}"
    return f"{tokens:,}"


_SI = (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3))
_IEC = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))


def format_bytes(n_bytes: float, iec: bool = False) -> str:
    """Bytes as SI text (``32.77 GB``, GB = 10^9 B) or IEC text (``30.52 GiB``, GiB = 2^30 B)."""
    for unit, scale in _IEC if iec else _SI:
        if n_bytes >= scale:
            return f"{n_bytes / scale:,.2f} {unit}"
    return f"{n_bytes:,.0f} B" if float(n_bytes).is_integer() else f"{n_bytes:.3g} B"


def format_whole(value: int) -> str:
    """A whole number as an error line quotes it: with separators, or its length where it is absurdly long
    (a 4,400-digit rank is "of 4,400 digits", not 5,866 characters)."""
    digits = len(str(abs(value)))
    return f"{value:,}" if digits <= 30 else f"of {digits:,} digits"


def format_number(value: float) -> str:
    """Thousands separators; two decimals when not whole; three significant figures below 1."""
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) < 1:
        return f"{value:.3g}"
    return f"{value:,.2f}"


_GRID_STEP_PATTERN = r"^(log|lin|x)([0-9]+)$"


MAX_GRID_POINTS = 10**6  # per axis; a sweep's product is capped too (estimator.sweep.MAX_POINTS)
MAX_RANK = 10**9  # far beyond any full rank (the widest maps have tens of thousands of dimensions)


def parse_grid(text: str, what: str = "tokens", limit: int = MAX_COUNT) -> tuple[int, ...]:
    """Read a grid of whole numbers (token counts or ranks, each from 1 to ``limit``), sorted, no repeats.

    ``1k,10k,100k``: the values listed (each read by :func:`parse_tokens`).
    ``1k:1B:log20``: 20 points spaced evenly on a log scale from 1k to 1B, both ends included.
    ``1k:10k:lin10``: 10 evenly spaced points. ``1:8192:x2``: 1, 2, 4, ... (times 2) up to 8,192.
    Points are rounded to whole numbers, so a fine log grid over small values has fewer points.
    At most ``MAX_GRID_POINTS`` points, refused before any is computed.
    """
    fix = f"write e.g. 1k:1B:log20, 1:8192:x2 or 1,8,32,128 for {what}"
    one = "token count" if what == "tokens" else what.removesuffix("s")

    def parse(part: str) -> int:
        return parse_tokens(part, one, limit)

    parts = text.split(":")
    if len(parts) == 1:
        items = [p for p in text.split(",") if p.strip()]
        if len(items) > MAX_GRID_POINTS:
            raise EstimatorError(f"{len(items):,} {what} are too many; give at most {MAX_GRID_POINTS:,}")
        values = [parse(p) for p in items]
        if not values:
            raise EstimatorError(f"no {what} given in {text!r}; {fix}")
        return tuple(sorted(set(values)))
    if len(parts) != 3:
        raise EstimatorError(f"cannot read the {what} grid {text!r}; {fix}")
    start, stop = parse(parts[0]), parse(parts[1])
    step = re.match(_GRID_STEP_PATTERN, parts[2].strip().lower())
    if step is None or int(step[2]) < 1 or (step[1] == "x" and int(step[2]) < 2):
        raise EstimatorError(f"cannot read the step {parts[2]!r} of the {what} grid; {fix}")
    if stop < start:
        raise EstimatorError(f"the {what} grid {text!r} runs backwards; give the smaller end first")
    kind, n = step[1], int(step[2])
    if kind == "x":
        powers = [start]
        while powers[-1] * n <= stop:
            powers.append(powers[-1] * n)
        return tuple(powers)
    if n > MAX_GRID_POINTS:
        raise EstimatorError(f"{n:,} points in the {what} grid {text!r} are too many; use at most {MAX_GRID_POINTS:,}")
    if kind == "lin":
        if n == 1 or start == stop:
            return (start,)
        span, steps = stop - start, n - 1  # start + span · i / steps, rounded half up, in integers
        return tuple(sorted({start + (2 * span * i + steps) // (2 * steps) for i in range(n)}))
    return log_grid(start, stop, n)


def log_grid(start: int, stop: int, points: int) -> tuple[int, ...]:
    """``points`` whole numbers spaced evenly on a log scale from ``start`` to ``stop``, both ends exact,
    rounded, sorted and without repeats (so fewer points where the values are small)."""
    if points == 1 or start == stop:
        return (start,)
    raw = [start * (stop / start) ** (i / (points - 1)) for i in range(1, points - 1)]
    inner = {min(max(round(v), start), stop) for v in raw}  # a float's rounding never leaves [start, stop]
    return tuple(sorted(inner | {start, stop}))  # the ends exactly


_FLOP_PREFIXES = (("Z", 10**21), ("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3))


def format_flops(flops: float) -> str:
    """FLOPs with an SI prefix: ``29.64 PFLOP`` (P = 10^15)."""
    for prefix, scale in _FLOP_PREFIXES:
        if abs(flops) >= scale:
            return f"{flops / scale:,.2f} {prefix}FLOP"
    return f"{flops:,.0f} FLOP"


def format_tokens_approx(tokens: float) -> str:
    """Three significant figures with a suffix: ``339,754,925`` -> ``340M``; below 1,000 the number."""
    for suffix, scale in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("k", 10**3)):
        if tokens >= scale:
            return f"{tokens / scale:.3g}{suffix}"
    return f"{tokens:,.0f}"


def largest_fitting(fits: Callable[[int], bool], limit: int, low: int = 1) -> int:
    """The largest n in [low, limit] with ``fits(n)``, for a ``fits`` that holds up to some n and fails after it
    (memory that only grows with n); ``low - 1`` where not even ``low`` fits. A bisection: ⌈log2(limit)⌉ calls,
    24 for a limit of 10^7."""
    if not fits(low):
        return low - 1
    high = limit
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low

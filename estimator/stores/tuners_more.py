"""More of peft's tuners on linear maps: rotations (OFT, BOFT, HRA, RoAd), sparse and spectral updates (SHiRA,
WaveFT, C3A), and LoRA's relatives (MiSS, DeLoRA, GraLoRA, RandLoRA, UniLoRA), as peft 0.21 builds them.

Notation as in :mod:`estimator.stores.tuner_kinds`: maps m (d_in -> d_out, c_m instances), M = Σ c_m, r the
rank; worked numbers for Llama 3 70B, all-linear (Σ c_m d_in = 6,225,920, Σ c_m d_out = 6,717,440), r = 32.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from estimator.errors import EstimatorError, MethodNotApplicableError
from estimator.query.vocabulary import Method
from estimator.stores.tuners import Elements, Knob, PeftTuner

if TYPE_CHECKING:
    from estimator.layout import LinearMap
    from estimator.query import Query

INT32_BITS = 32  # SHiRA saves its (row, column) indices as torch.int


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _whole(value: Knob, name: str, title: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise EstimatorError(f"{title}'s {name} {value!r} must be a whole number of at least {low}")
    return value


def _divides(maps: tuple[LinearMap, ...], size: int, title: str, what: str, outputs_only: bool = False) -> None:
    bad = [m.short_name for m in maps if m.d_out % size or (not outputs_only and m.d_in % size)]
    if bad:
        raise MethodNotApplicableError(
            f"peft's {title} needs {what} {size} to divide the widths; {', '.join(dict.fromkeys(bad))} do not"
        )


def hra_params(maps: tuple[LinearMap, ...], rank: int) -> int:
    """HRA: r Householder vectors of d_in per map: r · Σ c_m d_in. Llama 3 70B, r = 32: 32 · 6,225,920 =
    199,229,440."""
    return rank * sum(m.d_in * m.copies for m in maps)


def road_params(maps: tuple[LinearMap, ...], variant: str) -> int:
    """RoAd: an angle θ and a scale α per 2-D rotation of the outputs: road_1 shares them between the two
    halves (d_out / 2 each), road_2 keeps one per output (d_out each), road_4 two (2 · d_out each).
    Llama 3 70B, road_1: 2 · 6,717,440 / 2 = 6,717,440."""
    per_output = {"road_1": 1, "road_2": 2, "road_4": 4}
    if variant not in per_output:
        raise EstimatorError(f"RoAd's variant {variant!r} is unknown; give road_1, road_2 or road_4")
    return sum(per_output[variant] * m.d_out * m.copies for m in maps)


def oft_block(d_in: int, block: int) -> int:
    """peft's OFT block size for a map: ``oft_block_size`` if it divides d_in, else the nearest divisor (the
    lower one on a tie), d_in itself when the block exceeds it."""
    if block >= d_in:
        return d_in
    higher = block
    while higher <= d_in and d_in % higher:
        higher += 1
    lower = block
    while lower > 1 and d_in % lower:
        lower -= 1
    return lower if block - lower <= higher - block else higher


def oft_params(maps: tuple[LinearMap, ...], block: int) -> int:
    """OFT: d_in / b skew-symmetric blocks of b (b − 1) / 2 entries per map (a block-diagonal Cayley rotation
    of the input). Llama 3 70B, b = 32: 496 · 6,225,920 / 32 = 96,501,760."""
    total = 0
    for m in maps:
        b = oft_block(m.d_in, block)
        total += m.d_in // b * (b * (b - 1) // 2) * m.copies
    return total


def boft_params(maps: tuple[LinearMap, ...], block: int, factor: int) -> int:
    """BOFT: F butterfly factors of d_in / b blocks of b × b, and a scale of d_out, per map:
    F · d_in · b + d_out. Llama 3 70B, b = 4, F = 1: 4 · 6,225,920 + 6,717,440 = 31,621,120."""
    if factor > max(m.d_in for m in maps).bit_length():  # 2^(F − 1) · b must fit in d_in
        raise MethodNotApplicableError(f"peft's BOFT: boft_n_butterfly_factor {factor} exceeds what d_in admits")
    bad = [m.short_name for m in maps if m.d_in % (block * 2 ** (factor - 1))]
    if bad:
        raise MethodNotApplicableError(
            f"peft's BOFT needs boft_block_size · 2^(factor − 1) to divide d_in; {', '.join(dict.fromkeys(bad))} do not"
        )
    return sum((factor * m.d_in * block + m.d_out) * m.copies for m in maps)


def lora_like_params(maps: tuple[LinearMap, ...], rank: int) -> int:
    """r · (d_in + d_out) per map (GraLoRA's k² blocks hold as many; SHiRA's sparse entries; DeLoRA's A and
    B). Llama 3 70B, r = 32: 414,187,520."""
    return rank * sum((m.d_in + m.d_out) * m.copies for m in maps)


def c3a_params(maps: tuple[LinearMap, ...], block: int) -> int:
    """C3A: a circular-convolution kernel of b per (d_out / b) × (d_in / b) block: d_in · d_out / b per map.
    Llama 3 70B, b = 256: 80 · 855,638,016 / 256 = 267,386,880."""
    return sum(m.d_in * m.d_out // block * m.copies for m in maps)


def randlora_elements(
    maps: tuple[LinearMap, ...], rank: int, save_projection: bool = True, instances: int = 1
) -> Elements:
    """RandLoRA: per map n = ⌈min(d_in, d_out) / r⌉ random bases, trained through λ (r × n) and
    γ (n × min(d_in, d_out)); one frozen random pair shared by all maps, A (r × min D) and B (max D × N × r)
    with D the elementwise largest (d_out, d_in) and N = ⌈min D / r⌉, saved with ``save_projection``.
    Llama 3 70B, r = 32: q, o, gate, up, down (min 8,192: n = 256) 32 · 256 + 256 · 8,192 = 2,105,344 each;
    k, v (min 1,024: n = 32) 32 · 32 + 32 · 1,024 = 33,792 each: 80 · 10,594,304 = 847,544,320 trained; shared
    D = (28,672, 28,672), N = 896: 32 · 28,672 + 28,672 · 896 · 32 = 823,001,088.
    peft 0.21's state dict names the shared pair once at the model and once in each of the M adapted modules,
    and ``save_pretrained`` writes every name: saved = trained + (M + 1) · shared (measured on the twin), here
    847,544,320 + 561 · 823,001,088 = 462,551,154,688, more than the model; minimal = trained.
    """
    trained = 0
    for m in maps:
        small = min(m.d_in, m.d_out)
        n = _ceil_div(small, rank)
        trained += (rank * n + n * small) * m.copies
    widths = (max(m.d_out for m in maps), max(m.d_in for m in maps))
    small, large = min(widths), max(widths)
    shared = rank * small + large * _ceil_div(small, rank) * rank
    return Elements(trained, trained + ((instances + 1) * shared if save_projection else 0), trained)


class _Rank(PeftTuner):
    """A tuner whose elements are ``count(maps, rank)`` (trained = saved = minimal)."""

    def count(self, maps: tuple[LinearMap, ...], rank: int, knobs: dict[str, Knob]) -> int:
        raise NotImplementedError

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        n = self.count(maps, q.rank, knobs)
        return Elements(n, n, n)


class HRA(_Rank):
    method = Method.hra
    title, peft_kind = "HRA", "HRAConfig"
    conv1d = False
    formula = "r Householder vectors of d_in per map;"

    def count(self, maps: tuple[LinearMap, ...], rank: int, knobs: dict[str, Knob]) -> int:
        return hra_params(maps, rank)


class RoAd(_Rank):
    method = Method.road
    title, peft_kind = "RoAd", "RoadConfig"
    conv1d = False
    rank_knob = None
    knobs: ClassVar[dict[str, Knob]] = {"variant": "road_1", "group_size": 64}
    formula = "an angle and a scale per pair of outputs (road_1: d_out per map);"

    def count(self, maps: tuple[LinearMap, ...], rank: int, knobs: dict[str, Knob]) -> int:
        _divides(maps, _whole(knobs["group_size"], "group_size", self.title), self.title, "group_size", True)
        return road_params(maps, str(knobs["variant"]))


class OFT(_Rank):
    method = Method.oft
    title, peft_kind = "OFT", "OFTConfig"
    conv1d = False
    rank_knob = None  # peft's r is the number of blocks, fixed by the block size
    knobs: ClassVar[dict[str, Knob]] = {"oft_block_size": 32}
    formula = "d_in / b blocks of b (b − 1) / 2 per map (b adjusted to a divisor of d_in, as peft);"

    def count(self, maps: tuple[LinearMap, ...], rank: int, knobs: dict[str, Knob]) -> int:
        return oft_params(maps, _whole(knobs["oft_block_size"], "oft_block_size", self.title))


class BOFT(_Rank):
    method = Method.boft
    title, peft_kind = "BOFT", "BOFTConfig"
    conv1d = False
    meta = False
    rank_knob = None
    knobs: ClassVar[dict[str, Knob]] = {"boft_block_size": 4, "boft_n_butterfly_factor": 1}
    formula = "F · d_in · b (butterfly blocks) + d_out (scale) per map;"

    def count(self, maps: tuple[LinearMap, ...], rank: int, knobs: dict[str, Knob]) -> int:
        block = _whole(knobs["boft_block_size"], "boft_block_size", self.title)
        return boft_params(maps, block, _whole(knobs["boft_n_butterfly_factor"], "boft_n_butterfly_factor", "BOFT"))


class MiSS(_Rank):
    method = Method.miss
    title, peft_kind = "MiSS", "MissConfig"
    conv1d = False
    formula = "one shard of r × d_out per map;"

    def count(self, maps: tuple[LinearMap, ...], rank: int, knobs: dict[str, Knob]) -> int:
        return rank * sum(m.d_out * m.copies for m in maps)


class GraLoRA(_Rank):
    method = Method.gralora
    title, peft_kind = "GraLoRA", "GraloraConfig"
    knobs: ClassVar[dict[str, Knob]] = {"gralora_k": 2}
    formula = "k × k LoRA blocks of rank r / k: r · (d_in + d_out) per map;"

    def count(self, maps: tuple[LinearMap, ...], rank: int, knobs: dict[str, Knob]) -> int:
        k = _whole(knobs["gralora_k"], "gralora_k", self.title)
        _divides(maps, k, self.title, "gralora_k")
        if rank % k:
            raise MethodNotApplicableError(
                f"GraLoRA's rank {rank} must be a multiple of gralora_k {k}; give another --rank"
            )
        return lora_like_params(maps, rank)


class C3A(_Rank):
    method = Method.c3a
    title, peft_kind = "C3A", "C3AConfig"
    conv1d = False
    rank_knob = None
    knobs: ClassVar[dict[str, Knob]] = {"block_size": 256}
    formula = "a circulant kernel of b per b × b block: d_in · d_out / b per map;"

    def count(self, maps: tuple[LinearMap, ...], rank: int, knobs: dict[str, Knob]) -> int:
        block = _whole(knobs["block_size"], "block_size", self.title)
        _divides(maps, block, self.title, "block_size")
        return c3a_params(maps, block)


class WaveFT(_Rank):
    method = Method.waveft
    title, peft_kind = "WaveFT", "WaveFTConfig"
    rank_knob = None
    knobs: ClassVar[dict[str, Knob]] = {"n_frequency": 2592}
    formula = "n_frequency wavelet coefficients per map (their positions from a seed, never saved);"

    def count(self, maps: tuple[LinearMap, ...], rank: int, knobs: dict[str, Knob]) -> int:
        n = _whole(knobs["n_frequency"], "n_frequency", self.title)
        small = [m.short_name for m in maps if m.d_in * m.d_out < n]
        if small:
            raise MethodNotApplicableError(
                f"WaveFT's n_frequency {n:,} exceeds the entries of {', '.join(dict.fromkeys(small))}; give a smaller "
                "--tuner-option n_frequency or other --targets"
            )
        return n * sum(m.copies for m in maps)


class DeLoRA(PeftTuner):
    method = Method.delora
    title, peft_kind = "DeLoRA", "DeloraConfig"
    conv1d = False
    formula = (
        "r · (d_in + d_out) + 1 (A, B, λ) trained per map; the base weight's column norms (d_in) saved, derived "
        "from the base model;"
    )

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """trained = r Σ c_m (d_in + d_out) + M; saved + Σ c_m d_in; minimal = trained.
        Llama 3 70B, r = 32: 414,187,520 + 560 = 414,188,080; saved + 6,225,920 = 420,414,000."""
        trained = lora_like_params(maps, q.rank) + sum(m.copies for m in maps)
        return Elements(trained, trained + sum(m.d_in * m.copies for m in maps), trained)


class SHiRA(PeftTuner):
    method = Method.shira
    title, peft_kind = "SHiRA", "ShiraConfig"
    conv1d = False
    meta = False
    formula = (
        "r · (d_in + d_out) sparse entries of the weight per map, saved with their (row, column) indices in int32 "
        "(peft's random mask has no seed by default, so the indices are kept);"
    )

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """trained = r Σ c_m (d_in + d_out); saved = minimal = trained floats + 2 · trained int32 indices.
        Llama 3 70B, r = 32: 414,187,520 floats and 828,375,040 indices."""
        small = [m.short_name for m in maps if q.rank * (m.d_in + m.d_out) > m.d_in * m.d_out]
        if small:
            raise MethodNotApplicableError(
                f"SHiRA's r · (d_in + d_out) at rank {q.rank} exceeds the entries of "
                f"{', '.join(dict.fromkeys(small))}; lower --rank or other --targets"
            )
        n = lora_like_params(maps, q.rank)
        return Elements(n, n, n, 2 * n, 2 * n, INT32_BITS)


class RandLoRA(PeftTuner):
    method = Method.randlora
    title, peft_kind = "RandLoRA", "RandLoraConfig"
    knobs: ClassVar[dict[str, Knob]] = {"save_projection": True}
    formula = "λ (r × n) and γ (n × min(d_in, d_out)) per map over n random bases; one shared random pair;"

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        return randlora_elements(maps, q.rank, bool(knobs["save_projection"]), sum(m.copies for m in maps))


class UniLoRA(PeftTuner):
    method = Method.unilora
    title, peft_kind = "UniLoRA", "UniLoraConfig"
    meta = False
    knobs: ClassVar[dict[str, Knob]] = {"theta_d_length": 256}
    formula = "one vector θ_d shared by every entry of every LoRA (indices and scales regenerated, not saved);"

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """trained = saved = minimal = theta_d_length (Llama 3 70B: 256, whatever the rank)."""
        n = _whole(knobs["theta_d_length"], "theta_d_length", self.title)
        return Elements(n, n, n)


MORE_TUNERS: tuple[PeftTuner, ...] = (
    HRA(), RoAd(), OFT(), BOFT(), MiSS(), GraLoRA(), C3A(), WaveFT(), DeLoRA(), SHiRA(), RandLoRA(), UniLoRA()
)  # fmt: skip

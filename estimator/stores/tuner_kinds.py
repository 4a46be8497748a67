"""peft's tuners on linear maps, each sized three ways (trained, saved, minimal), as peft 0.21 builds them.

Notation: the targeted maps m (each d_in -> d_out, c_m instances: layers × copies), M = Σ c_m instances,
r the rank. Worked numbers: Llama 3 70B, all-linear (q, k, v, o, gate, up, down in 80 layers: M = 560,
Σ (d_in + d_out) = 12,943,360, Σ d_out = 6,717,440), r = 32.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from estimator.errors import EstimatorError, MethodNotApplicableError
from estimator.query.vocabulary import Method
from estimator.stores.tuners import Elements, Knob, PeftTuner, TunerOptions
from estimator.stores.tuners_last import LAST_TUNERS
from estimator.stores.tuners_more import MORE_TUNERS
from estimator.stores.tuners_others import OTHER_TUNERS
from estimator.units import MAX_COUNT

if TYPE_CHECKING:
    from estimator.layout import LinearMap
    from estimator.query import Query


def instances(maps: tuple[LinearMap, ...]) -> int:
    """M = Σ c_m: the adapted module instances (Llama 3 70B, all-linear: 7 × 80 = 560)."""
    return sum(m.copies for m in maps)


def _positive(value: Knob, name: str, title: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EstimatorError(f"{title}'s {name} {value!r} must be a positive whole number; give e.g. {name}=2")
    return value


def vera_elements(maps: tuple[LinearMap, ...], rank: int, save_projection: bool = True) -> Elements:
    """VeRA (Kopiczko et al. 2024): per map two scaling vectors, λ_b (d_out) and λ_d (r), trained; one
    frozen random pair shared by all maps, A (r × max d_in) and B (max d_out × r), saved with
    ``save_projection`` (peft's default) and otherwise regenerated from ``projection_prng_key``.

    trained = Σ c_m (d_out + r); saved = trained + r · (max d_in + max d_out) if saved; minimal = trained.
    Llama 3 70B, r = 32: 80 · (83,968 + 7 · 32) = 6,735,360 trained; + 32 · (28,672 + 28,672) = 1,835,008
    shared = 8,570,368 saved.
    """
    trained = sum((m.d_out + rank) * m.copies for m in maps)
    shared = rank * (max(m.d_in for m in maps) + max(m.d_out for m in maps))
    return Elements(trained, trained + (shared if save_projection else 0), trained)


def factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
    """LyCORIS's split of a width into m · n (m ≤ n): the pair of divisors nearest its square root (or
    ``factor`` · dimension / factor when ``factor`` divides it), as peft's LoKr splits in and out widths.
    8,192 -> (64, 128); 1,024 -> (32, 32); 28,672 -> (128, 224)."""
    if factor > 0 and dimension % factor == 0:
        return min(factor, dimension // factor), max(factor, dimension // factor)
    limit = dimension if factor == -1 else factor
    m, n = 1, dimension
    while m < n:
        new_m = m + 1
        while dimension % new_m:
            new_m += 1
        new_n = dimension // new_m
        if new_m + new_n > m + n or new_m > limit:
            break
        m, n = new_m, new_n
    return min(m, n), max(m, n)


def lokr_map_params(d_in: int, d_out: int, rank: int, decompose_both: bool = False, factor: int = -1) -> int:
    """LoKr (Kronecker) on one map: ΔW = W1 ⊗ W2 with d_out = a · b, d_in = c · d split by
    :func:`factorization`; W1 is a × c (or r · (a + c) when ``decompose_both`` and r < max(a, c) / 2), W2 is
    b × d, or the low-rank r · (b + d) when r < max(b, d) / 2 (peft's rule).
    Llama 3 70B q_proj (8,192 -> 8,192 = 64 · 128 each), r = 32: 64 · 64 + 32 · (128 + 128) = 12,288
    (32 < 128 / 2, so W2 is low-rank).
    """
    a, b = factorization(d_out, factor)
    c, d = factorization(d_in, factor)
    w1 = rank * (a + c) if decompose_both and rank < max(a, c) / 2 else a * c
    w2 = rank * (b + d) if rank < max(b, d) / 2 else b * d
    return w1 + w2


def lokr_params(maps: tuple[LinearMap, ...], rank: int, decompose_both: bool = False, factor: int = -1) -> int:
    """LoKr: Σ c_m · :func:`lokr_map_params`. Llama 3 70B, r = 32, all-linear: 80 · 97,280 = 7,782,400 (per
    layer: q, o 12,288 each; k, v (1,024 = 32 · 32) 32 · 64 + 32 · (32 + 128) = 7,168 each; gate, up
    (28,672 = 128 · 224) 128 · 64 + 32 · (224 + 128) = 19,456 each; down 64 · 128 + 32 · (128 + 224) = 19,456)."""
    return sum(lokr_map_params(m.d_in, m.d_out, rank, decompose_both, factor) * m.copies for m in maps)


def loha_params(maps: tuple[LinearMap, ...], rank: int) -> int:
    """LoHa (Hadamard): ΔW = (B1 A1) ⊙ (B2 A2), two LoRA pairs per map: 2 · r · (d_in + d_out).
    Llama 3 70B, r = 32: 2 · 32 · 80 · 161,792 = 828,375,040 (twice LoRA's 414,187,520)."""
    return sum(2 * rank * (m.d_in + m.d_out) * m.copies for m in maps)


def fourierft_params(maps: tuple[LinearMap, ...], n_frequency: int) -> int:
    """FourierFT: n learned spectral coefficients per map, at positions drawn from ``random_loc_seed``
    (regenerated, never saved): n · M. Llama 3 70B, n = 1,000: 560,000."""
    small = [m.short_name for m in maps if m.d_in * m.d_out < n_frequency]
    if small:
        raise MethodNotApplicableError(
            f"FourierFT's n_frequency {n_frequency:,} exceeds the entries of {', '.join(dict.fromkeys(small))}; "
            "give a smaller --tuner-option n_frequency"
        )
    return n_frequency * instances(maps)


def index_bits(num_vectors: int) -> int:
    """peft's top-k index dtype for a bank of N vectors: uint8 below 2^8, int16 below 2^15, int32, int64."""
    for bits, bound in ((8, 2**8), (16, 2**15), (32, 2**31)):
        if num_vectors < bound:
            return bits
    return 64


def vblora_elements(
    maps: tuple[LinearMap, ...], rank: int, num_vectors: int = 256, vector_length: int = 256, topk: int = 2
) -> Elements:
    """VB-LoRA (Li et al. 2024): a bank of N vectors of length L shared by all maps; each map's A and B are
    cut into r · (d_in + d_out) / L sub-vectors s, each a top-k mix of the bank chosen by N logits.

    trained = saved = N · L + Σ c_m · s_m · N; minimal (``save_only_topk_weights``) = N · L + Σ c_m · s_m ·
    (k − 1) weights, and k indices per sub-vector at :func:`index_bits`.
    Llama 3 70B, r = 32, N = L = 256, k = 2: s = 32 · 12,943,360 / 256 = 1,617,920 sub-vectors; trained
    65,536 + 1,617,920 · 256 = 414,253,056; minimal 65,536 + 1,617,920 floats and 3,235,840 int16 indices.
    """
    bad = [m.short_name for m in maps if m.d_in % vector_length or m.d_out % vector_length]
    if bad:
        raise MethodNotApplicableError(
            f"VB-LoRA's vector_length {vector_length} must divide every width; {', '.join(dict.fromkeys(bad))} "
            "do not; give --tuner-option vector_length=... or other --targets"
        )
    subvectors = sum(rank * (m.d_in + m.d_out) // vector_length * m.copies for m in maps)
    bank = num_vectors * vector_length
    trained = bank + subvectors * num_vectors
    return Elements(trained, trained, bank + subvectors * (topk - 1), 0, subvectors * topk, index_bits(num_vectors))


def tinylora_elements(
    maps: tuple[LinearMap, ...], rank: int, u: int = 64, weight_tying: float = 0.0, save_projection: bool = True
) -> Elements:
    """TinyLoRA: ΔW = B (Σ_i v_i P_i) A, A and B the base weight's truncated SVD at rank r' = min(r, d_in,
    d_out) (frozen buffers, saved), P fixed random u × r' × r' (saved with ``save_projection``), v of u
    trained, shared by groups of maps: G = max(1, round(M · (1 − weight_tying))).

    trained = G · u; saved = trained + Σ c_m · r' (d_in + d_out) + [Σ c_m · u · r'²]; minimal = trained
    (A and B from the base model, P from ``projection_seed``).
    Llama 3 70B, r = 32, u = 64: trained 560 · 64 = 35,840; saved 35,840 + 32 · 80 · 161,792 + 560 · 64 ·
    32² = 35,840 + 414,187,520 + 36,700,160 = 450,923,520.
    """
    if not 0.0 <= weight_tying <= 1.0:
        raise EstimatorError(f"TinyLoRA's weight_tying {weight_tying} must lie in [0, 1]; give e.g. 0.5")
    groups = max(1, round(instances(maps) * (1.0 - weight_tying)))
    trained = groups * u
    svd = sum(min(rank, m.d_in, m.d_out) * (m.d_in + m.d_out) * m.copies for m in maps)
    projections = sum(u * min(rank, m.d_in, m.d_out) ** 2 * m.copies for m in maps) if save_projection else 0
    return Elements(trained, trained + svd + projections, trained)


class VeRA(PeftTuner):
    method = Method.vera
    title, peft_kind = "VeRA", "VeraConfig"
    knobs: ClassVar[dict[str, Knob]] = {"save_projection": True}
    formula = "Σ (d_out + r) trained per map (λ_b, λ_d); one shared random A (r × max d_in), B (max d_out × r);"

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        return vera_elements(maps, q.rank, bool(knobs["save_projection"]))


class PVeRA(PeftTuner):
    method = Method.pvera
    title, peft_kind = "PVeRA", "PveraConfig"
    knobs: ClassVar[dict[str, Knob]] = {"save_projection": True}
    formula = "VeRA with a shared A of 2r rows: Σ (d_out + 2r) trained per map; A (2r × max d_in), B (max d_out × r);"

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        """trained = Σ c_m (d_out + 2r); saved + 2r · max d_in + max d_out · r with ``save_projection``.
        Llama 3 70B, r = 32: 6,717,440 + 64 · 560 = 6,753,280; + 64 · 28,672 + 28,672 · 32 = 2,752,512 shared."""
        trained = sum((m.d_out + 2 * q.rank) * m.copies for m in maps)
        shared = 2 * q.rank * max(m.d_in for m in maps) + max(m.d_out for m in maps) * q.rank
        return Elements(trained, trained + (shared if knobs["save_projection"] else 0), trained)


class LoKr(PeftTuner):
    method = Method.lokr
    title, peft_kind = "LoKr", "LoKrConfig"
    conv1d = False
    knobs: ClassVar[dict[str, Knob]] = {"decompose_both": False, "decompose_factor": -1}
    formula = "ΔW = W1 ⊗ W2 per map, widths split near their square roots, W2 low-rank where r < its side / 2;"

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        factor = knobs["decompose_factor"]
        if factor != -1:
            _positive(factor, "decompose_factor", self.title)
        n = lokr_params(maps, q.rank, bool(knobs["decompose_both"]), int(factor))
        return Elements(n, n, n)


class LoHa(PeftTuner):
    method = Method.loha
    title, peft_kind = "LoHa", "LoHaConfig"
    conv1d = False
    formula = "2 · r · (d_in + d_out) per map (two LoRA pairs, multiplied elementwise);"

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        n = loha_params(maps, q.rank)
        return Elements(n, n, n)


class FourierFT(PeftTuner):
    method = Method.fourierft
    title, peft_kind = "FourierFT", "FourierFTConfig"
    rank_knob = None
    knobs: ClassVar[dict[str, Knob]] = {"n_frequency": 1000}
    formula = "n_frequency spectral coefficients per map (their positions from a seed, never saved);"

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        n = fourierft_params(maps, _positive(knobs["n_frequency"], "n_frequency", self.title))
        return Elements(n, n, n)


class VBLoRA(PeftTuner):
    method = Method.vblora
    title, peft_kind = "VB-LoRA", "VBLoRAConfig"
    knobs: ClassVar[dict[str, Knob]] = {
        "num_vectors": 256,
        "vector_length": 256,
        "topk": 2,
        "save_only_topk_weights": False,
    }
    formula = (
        "a shared bank of N vectors of length L, and N logits per sub-vector of A and B (r · (d_in + d_out) / L "
        "per map); minimal: the bank and the top-k weights and indices (save_only_topk_weights);"
    )

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        n, length, k = (_positive(knobs[key], key, self.title) for key in ("num_vectors", "vector_length", "topk"))
        if k > n:
            raise EstimatorError(f"VB-LoRA's topk {k} exceeds num_vectors {n}; give a smaller topk")
        full = vblora_elements(maps, q.rank, n, length, k)
        if not knobs["save_only_topk_weights"]:
            return full
        return Elements(
            full.trained, full.minimal, full.minimal, full.minimal_index, full.minimal_index, full.index_bits
        )


class TinyLoRA(PeftTuner):
    method = Method.tinylora
    title, peft_kind = "TinyLoRA", "TinyLoraConfig"
    knobs: ClassVar[dict[str, Knob]] = {"u": 64, "weight_tying": 0.0, "save_projection": True}
    formula = (
        "u trained per group of maps; frozen SVD factors of the base weight (r · (d_in + d_out)) and random "
        "projections (u · r²) saved per map;"
    )

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        u = _positive(knobs["u"], "u", self.title)
        return tinylora_elements(maps, q.rank, u, float(knobs["weight_tying"]), bool(knobs["save_projection"]))


TUNERS: tuple[PeftTuner, ...] = (
    VeRA(),
    PVeRA(),
    LoKr(),
    LoHa(),
    FourierFT(),
    VBLoRA(),
    TinyLoRA(),
    *MORE_TUNERS,
    *OTHER_TUNERS,
    *LAST_TUNERS,
)
KNOBS: dict[str, Knob] = {name: default for tuner in TUNERS for name, default in tuner.knobs.items()}


def parse_tuner_options(text: str | None) -> TunerOptions:
    """``--tuner-option n_frequency=2000,u=32``: knob names of peft's tuners and their values, each once."""
    if text is None or not text.strip():
        return ()
    chosen: dict[str, Knob] = {}
    for item in text.split(","):
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name or not value:
            raise EstimatorError(
                f"cannot read --tuner-option {item.strip()!r}; write name=value, e.g. n_frequency=2000"
            )
        if name == "r":
            raise EstimatorError("--tuner-option r: a tuner's rank is --rank; give --rank instead")
        if name not in KNOBS:
            raise EstimatorError(f"unknown tuner option {name!r}; use one of: {', '.join(sorted(KNOBS))}")
        if name in chosen:
            raise EstimatorError(f"--tuner-option gives {name} twice; give it once")
        chosen[name] = _knob_value(name, value, KNOBS[name])
    return tuple(chosen.items())


def _knob_value(name: str, text: str, default: Knob) -> Knob:
    """``text`` read as the type of peft's default for the knob (a bool as true/false, a name as itself)."""
    if isinstance(default, str):
        return text
    if isinstance(default, bool):
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise EstimatorError(f"--tuner-option {name}={text}: give true or false")
    kind = "a whole number" if isinstance(default, int) else "a number"
    try:
        value: int | float = int(text) if isinstance(default, int) else float(text)
    except ValueError:
        raise EstimatorError(f"--tuner-option {name}={text}: give {kind}, e.g. {name}={default}") from None
    if not math.isfinite(value) or abs(value) > MAX_COUNT:
        raise EstimatorError(f"--tuner-option {name}={text}: give {kind} of at most {MAX_COUNT:,}, e.g. {default}")
    return value


def check_tuner_options(options: TunerOptions, methods: tuple[Method, ...]) -> None:
    """Every option names a knob of a chosen tuner (one no row reads is refused, never ignored)."""
    read = {name for tuner in TUNERS if tuner.method in methods for name in tuner.knobs}
    unread = [name for name, _ in options if name not in read]
    if unread:
        raise EstimatorError(
            f"--tuner-option {', '.join(unread)} sizes none of the chosen rows; add the tuner to --methods "
            "(e.g. --methods peft) or drop the option"
        )

"""Vectorised sweeps over token counts and LoRA ranks: the arrays behind ``estimate sweep`` and the figures.

The scalar functions of :mod:`estimator.kv` and :mod:`estimator.stores.targets` define every quantity;
this module evaluates the same formulas on numpy arrays, and the tests hold each array to them:

    KV(T)      = ⌈b_layer · Σ_l min(T, w_l) / 8⌉ bytes       (w_l = ∞ for full attention)
    LoRA(r)    = r · P₁ · b_a / 8 bytes                       (P₁ = LoRA parameters at rank 1)
    ratio(r,T) = KV(T) / LoRA(r)                              (how many times more the cache spends)
    parity(T)  = ⌈8 · KV(T) / (b_a · P₁)⌉                     (smallest rank holding KV(T) bytes)

where b_layer = bits one layer caches per token, b_a = adapter bits per parameter. Grids are
indexed [rank, token]. Byte, parameter and rank counts are exact integers: int64 where every value
of the grid is below 2^62, Python integers (numpy object arrays) beyond, never a wrapped or rounded
count; ratios and per-token rates are float64. A sweep holds at most ``MAX_POINTS`` points.
numpy is imported here, never on the path of a plain query; pandas only by :meth:`Sweep.to_frame`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from estimator.architecture import layout_of
from estimator.compare import Estimate, crossover_tokens, evaluate
from estimator.errors import EstimatorError
from estimator.kv import kv_bits_per_token, kv_cache_bytes, kv_state_bits, windowed
from estimator.kv import kv_cache_bits as kv_cache_bits_at
from estimator.query.vocabulary import LoReFT, Method
from estimator.stores.targets import lora_params
from estimator.units import BITS_PER_BYTE

if TYPE_CHECKING:
    import pandas as pd

    from estimator.kv import KVFormat
    from estimator.specs import ModelSpec

Ints = NDArray[Any]  # int64, or Python ints (object) where a value passes 2^62
Floats = NDArray[np.float64]
SAFE = 2**62  # below this, int64 arithmetic (a product, then a sum of a few) cannot overflow
EXACT_FLOAT = 2**53  # integers below this are exact in float64
MAX_POINTS = 10**6  # tokens × ranks; larger sweeps are refused before any work
MAX_COUNT = 10**18  # tokens or rank at one point


def _as_ints(values: Any, what: str) -> Ints:
    """Whole numbers from 1 to 10^18 as an int64 array (never a float read as a count)."""
    items = list(values) if not isinstance(values, int | np.integer) else [values]
    fine = all(isinstance(v, int | np.integer) and not isinstance(v, bool) and 1 <= v <= MAX_COUNT for v in items)
    if not items or not fine:
        raise EstimatorError(
            f"{what} must be a non-empty list of positive whole numbers, at most 10^18; give e.g. [1000, 100000]"
        )
    return np.asarray(items, dtype=np.int64)


def exact_product(values: Ints, factor: int) -> Ints:
    """values · factor, exact: int64 while the largest product stays below 2^62, Python ints beyond."""
    if int(values.max()) * factor < SAFE:
        return values * factor
    return np.array([int(v) * factor for v in values.tolist()], dtype=object)


def exact_ratio(numerator: NDArray[Any], denominator: NDArray[Any]) -> Floats:
    """numerator / denominator (broadcast), correctly rounded as Python's int / int: numpy's float division
    is, while both are below 2^53 (exact in float64); beyond, each quotient is taken from the exact ints."""
    if int(np.max(numerator)) < EXACT_FLOAT and int(np.max(denominator)) < EXACT_FLOAT:
        return np.asarray(numerator.astype(np.float64) / denominator.astype(np.float64), dtype=np.float64)
    num, den = np.broadcast_arrays(numerator, denominator)
    quotients = [int(a) / int(b) for a, b in zip(num.ravel().tolist(), den.ravel().tolist(), strict=True)]
    return np.asarray(quotients, dtype=np.float64).reshape(num.shape)


def kv_cache_bytes_array(spec: ModelSpec, tokens: Any, kv: KVFormat) -> Ints:
    """:func:`estimator.kv.kv_cache_bytes` at every T of ``tokens``: ⌈Σ_g |g| · (b_g · h_g(T) + s_g) / 8⌉.

    Exact: int64 where the largest cache (at the largest T) is below 2^62 bits, Python ints beyond (and at each T
    where some layer's cache is not linear in T: DeepSeek V4's compressed layers).
    """
    t = _as_ints(tokens, "tokens")
    groups = layout_of(spec).groups
    if kv_cache_bits_at(spec, int(t.max()), kv) >= SAFE or not all(g.mixer.grows_linearly for g in groups):
        return np.array([kv_cache_bytes(spec, int(x), kv) for x in t.tolist()], dtype=object)
    bits = np.zeros(t.shape, dtype=np.int64)
    for group in groups:
        cap = group.mixer.cap_tokens(kv)
        held = t if cap is None else np.minimum(t, cap)
        bits += group.layers * (held * group.mixer.bits_per_token(kv) + group.mixer.fixed_bits(kv))
    return -(-bits // BITS_PER_BYTE)


def only_where(values: NDArray[Any], keep: NDArray[np.bool_]) -> NDArray[Any]:
    """``values`` where ``keep``, None elsewhere (a blank in CSV, null in JSON); unchanged when all kept."""
    if keep.all():
        return values
    out = values.astype(object)
    out[~keep] = None
    return out


@dataclass(frozen=True)
class Sweep:
    """The query ``base`` (model, targets, dtypes) swept over ``tokens`` × ``ranks``.

    Per token: ``kv_cache_bytes``, ``kv_bytes_per_token``, ``parity_rank``. Per rank:
    ``lora_params``, ``lora_bytes``. Grids [rank, token]: ``lora_bytes_per_token``, ``ratio``.
    """

    base: Estimate
    tokens: Ints
    ranks: Ints

    @property
    def spec(self) -> ModelSpec:
        return self.base.spec

    @cached_property
    def lora_params_rank1(self) -> int:
        """P₁: LoRA parameters at rank 1 (LoRA is linear in r: P(r) = r · P₁)."""
        return lora_params(self.base.targets, 1)

    @cached_property
    def kv_cache_bytes(self) -> Ints:
        return kv_cache_bytes_array(self.spec, self.tokens, self.base.kv)

    @property
    def kv_bytes_per_token(self) -> Floats:
        return exact_ratio(self.kv_cache_bytes, self.tokens)

    @property
    def lora_params(self) -> Ints:
        return exact_product(self.ranks, self.lora_params_rank1)

    @property
    def lora_bytes(self) -> Ints:
        """r · P₁ · b_a / 8 (whole bytes: adapters are stored in whole-byte dtypes)."""
        return exact_product(self.ranks, self.lora_params_rank1 * self.base.adapter_dtype.bits) // BITS_PER_BYTE

    @property
    def lora_fraction_of_model_params(self) -> Floats:
        return np.asarray(self.lora_params / self.base.params, dtype=np.float64)

    @property
    def lora_bytes_per_token(self) -> Floats:
        """[rank, token]: LoRA(r) / T."""
        return exact_ratio(self.lora_bytes[:, None], self.tokens[None, :])

    @property
    def kv_to_lora_bytes_ratio(self) -> Floats:
        """[rank, token]: KV(T) / LoRA(r), the compression ratio of the adapter over the cache."""
        return exact_ratio(self.kv_cache_bytes[None, :], self.lora_bytes[:, None])

    @property
    def parity_rank(self) -> Ints:
        """Per token: ⌈8 · KV(T) / (b_a · P₁)⌉, exactly, as :func:`estimator.compare.parity_rank`."""
        per_rank_bits = self.lora_params_rank1 * self.base.adapter_dtype.bits
        bits = exact_product(self.kv_cache_bytes, BITS_PER_BYTE)
        ranks: Ints = np.maximum(-(-bits // per_rank_bits), 1)
        return ranks

    @property
    def pretraining_bytes_per_token(self) -> float | None:
        return self.base.pretraining_bytes_per_token

    @cached_property
    def tokens_held(self) -> Ints:
        """Per token: the most tokens any layer's cache holds, as :func:`estimator.kv.kv_tokens_held`."""
        fmt = self.base.kv
        held = np.zeros(self.tokens.shape, dtype=self.tokens.dtype)
        for group in layout_of(self.spec).groups:
            if group.mixer.vectors(fmt):
                cap = group.mixer.cap_tokens(fmt)
                held = np.maximum(held, self.tokens if cap is None else np.minimum(self.tokens, cap))
        return held

    @property
    def holds_all_tokens(self) -> NDArray[np.bool_]:
        """Per token: whether the cache keeps the whole text (some layer holds every token, or a state
        summarises it); False past the window of a model whose every layer is windowed."""
        if self.base.kv_state_bytes > 0:
            return np.ones(self.tokens.shape, dtype=bool)
        return np.asarray(self.tokens_held >= self.tokens)

    @property
    def beyond_context_window(self) -> NDArray[np.bool_]:
        """Per token: T > the model's context window (never for a model without one: a pure SSM, whose family
        records 10^12 for "no limit of its own"), as :attr:`estimator.compare.Estimate.beyond_context_window`."""
        from estimator.compare import context_window_tokens

        window = context_window_tokens(self.spec)
        return np.zeros(self.tokens.shape, dtype=bool) if window is None else np.asarray(self.tokens > window)

    def crossover_tokens(self) -> list[int | None]:
        """Per rank: the token count at which the KV cache crosses the LoRA's bytes (None: its fixed state
        exceeds them from the first token, or windows cap it below them)."""
        b = kv_bits_per_token(self.spec, self.base.kv)
        if b and not windowed(self.spec):  # KV(T) = ⌈(T · b + S) / 8⌉ ≥ A  ⟺  T ≥ ⌊(8 (A − 1) − S) / b⌋ + 1
            state = kv_state_bits(self.spec, self.base.kv)
            return [  # none where the fixed state (the cache at T = 0) alone holds the adapter: no crossing
                None if -(-state // BITS_PER_BYTE) >= a else max(1, (BITS_PER_BYTE * (a - 1) - state) // b + 1)
                for a in map(int, self.lora_bytes.tolist())
            ]
        return [crossover_tokens(self.spec, int(size), self.base.kv) for size in self.lora_bytes.tolist()]

    def columns(self) -> dict[str, NDArray[Any]]:
        """Long format, one entry per (rank, token) point, every column named with its unit."""
        n_ranks, n_tokens = self.ranks.size, self.tokens.size
        pretraining = self.pretraining_bytes_per_token
        holds = np.tile(self.holds_all_tokens, n_ranks)
        state = self.base.kv_state_bytes
        columns = {
            "tokens": np.tile(self.tokens, n_ranks),
            "rank": np.repeat(self.ranks, n_tokens),
            "tokens_held": np.tile(self.tokens_held, n_ranks),
            "holds_all_tokens": holds,
            "beyond_context_window": np.tile(self.beyond_context_window, n_ranks),
            "kv_cache_bytes": np.tile(self.kv_cache_bytes, n_ranks),
            "kv_state_bytes": np.full(n_ranks * n_tokens, state, dtype=np.int64),
            "kv_growing_bytes": np.tile(self.kv_cache_bytes - state, n_ranks),
            "kv_bytes_per_token": only_where(np.tile(self.kv_bytes_per_token, n_ranks), holds),
            "lora_params": np.repeat(self.lora_params, n_tokens),
            "lora_bytes": np.repeat(self.lora_bytes, n_tokens),
            "lora_bytes_per_token": self.lora_bytes_per_token.ravel(),
            "lora_fraction_of_model_params": np.repeat(self.lora_fraction_of_model_params, n_tokens),
            "kv_to_lora_bytes_ratio": only_where(self.kv_to_lora_bytes_ratio.ravel(), holds),
            "parity_rank": only_where(np.tile(self.parity_rank, n_ranks), holds),
            "beyond_full_rank": np.repeat(self.ranks > self.base.targets.smallest_full_rank, n_tokens),
        }
        if pretraining is not None:  # no column without a pretraining token count
            columns["pretraining_bytes_per_token"] = np.full(n_ranks * n_tokens, pretraining)
        return columns

    def to_frame(self) -> pd.DataFrame:
        """The long table as a pandas DataFrame (one row per rank and token count)."""
        import pandas as pd

        return pd.DataFrame(self.columns())


def sweep(base: Estimate, tokens: Any, ranks: Any) -> Sweep:
    """Sweep ``base`` (an :func:`estimator.compare.estimate` result: model, targets, dtypes) over the grid.

    >>> from estimator import estimate, load_spec
    >>> s = sweep(estimate(load_spec("llama3-70b"), 100_000, 32), [1_000, 100_000], [8, 32])
    >>> s.kv_to_lora_bytes_ratio.round(1).tolist()
    [[1.6, 158.2], [0.4, 39.6]]
    """
    t, r = _as_ints(tokens, "tokens"), _as_ints(ranks, "ranks")
    if t.size * r.size > MAX_POINTS:
        raise EstimatorError(
            f"{t.size:,} token counts × {r.size:,} ranks are {t.size * r.size:,} points, more than {MAX_POINTS:,}; "
            "sweep fewer points (e.g. 1k:1B:log100)"
        )
    return Sweep(base, t, r)


def across_models(base: Estimate, specs: list[ModelSpec]) -> tuple[list[Estimate], list[tuple[ModelSpec, str]]]:
    """``base``'s query (tokens, rank, targets, dtypes) asked of every spec: estimates, and the specs
    it does not apply to with the reason (e.g. ``--targets qv`` on a model that fuses q, k and v)."""
    done, skipped = [], []
    for spec in specs:
        try:
            done.append(evaluate(replace(base.query, spec=spec, methods=(Method.kv, Method.lora), loreft=LoReFT())))
        except EstimatorError as exc:
            skipped.append((spec, str(exc)))
    return done, skipped

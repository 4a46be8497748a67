"""Putting the mechanisms side by side: rows, ratios, crossover tokens and parity ranks (no I/O).

:func:`estimate` is the query behind ``estimate --model ... --tokens ... --rank ...``: it returns
an :class:`Estimate`, a plain result object that the CLI prints and the plots draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from estimator.adapters import Targets, lora_bytes, lora_params, resolve_targets
from estimator.architecture import active_params, param_breakdown, total_params
from estimator.errors import EstimatorError, MethodNotApplicableError
from estimator.kv import KVFormat, as_format, kv_bytes_per_token, kv_cache_bytes, kv_max_cache_bytes
from estimator.methods import TRAINED, Method, Settings, method_params
from estimator.pretraining import pretraining_bytes_per_token, weights_bytes
from estimator.specs import ModelSpec
from estimator.units import BITS_PER_BYTE, DType, bits_to_bytes


def crossover_tokens(spec: ModelSpec, adapter_bytes: int, kv: KVFormat | DType) -> int | None:
    """Smallest T at which the KV cache holds at least the adapter's bytes: KV(T) ≥ A.

    Without sliding windows: ⌈A / (KV bytes per token)⌉ (Llama 3 70B, r = 32 LoRA in bf16:
    ⌈828,375,040 / 327,680⌉ = 2,528 tokens). With windows on every layer the cache stops
    growing; None when it never reaches A.
    """
    ceiling = kv_max_cache_bytes(spec, kv)
    if ceiling is not None and ceiling < adapter_bytes:
        return None
    low, high = 1, max(1, int(adapter_bytes // kv_bytes_per_token(spec, kv)) + 1)
    while kv_cache_bytes(spec, high, kv) < adapter_bytes:  # windows: the cache grows slower
        low, high = high, high * 2
    while low < high:  # KV(T) is non-decreasing in T
        mid = (low + high) // 2
        if kv_cache_bytes(spec, mid, kv) >= adapter_bytes:
            high = mid
        else:
            low = mid + 1
    return high


def parity_rank(targets: Targets, kv_bytes: int, adapter_dtype: DType) -> int:
    """Smallest r whose LoRA holds at least the KV cache's bytes: ⌈8 · KV(T) / (b · P₁)⌉.

    where: P₁ = LoRA parameters at rank 1, b = adapter bits per parameter, KV(T) = cache bytes.
    Llama 3 70B, 100k tokens, bf16: ⌈32,768,000,000 / 25,886,720⌉ = 1,266.
    """
    per_rank_bits = lora_params(targets, 1) * adapter_dtype.bits
    return max(1, -(-kv_bytes * BITS_PER_BYTE // per_rank_bits))


@dataclass(frozen=True)
class MethodRow:
    """One way of storing the text: its size, its bytes per token of the text, and the KV ratio."""

    method: Method
    params: int | None
    bytes: int
    bytes_per_token: float
    kv_ratio: float
    crossover_tokens: int | None


@dataclass(frozen=True)
class Estimate:
    """One query's numbers, every field in base units (bytes, parameters, tokens)."""

    spec: ModelSpec
    tokens: int
    settings: Settings
    targets: Targets
    kv: KVFormat
    adapter_dtype: DType
    weights_dtype: DType
    pretraining_tokens: int | None
    params: int
    active_params: int
    params_breakdown: dict[str, int]
    kv_bytes_per_token_unbounded: float
    kv_cache_bytes: int
    lora_params: int
    lora_bytes: int
    weights_bytes: int
    crossover_tokens: int | None
    parity_rank: int
    parity_params: int
    rows: tuple[MethodRow, ...] = field(default=())
    skipped: tuple[tuple[Method, str], ...] = field(default=())
    methods: tuple[Method, ...] = field(default=tuple(Method))

    @property
    def rank(self) -> int:
        return self.settings.rank

    @property
    def kv_dtype(self) -> DType:
        return self.kv.dtype

    @property
    def kv_bytes_per_token(self) -> float:
        """KV bytes per token of text at this T (= the unbounded figure without sliding windows)."""
        return self.kv_cache_bytes / self.tokens

    @property
    def lora_bytes_per_token(self) -> float:
        return self.lora_bytes / self.tokens

    @property
    def ratio(self) -> float:
        """KV bytes per token / LoRA bytes per token at T: how much more the cache spends."""
        return self.kv_cache_bytes / self.lora_bytes

    @property
    def pretraining_bytes_per_token(self) -> float | None:
        if self.pretraining_tokens is None:
            return None
        return pretraining_bytes_per_token(self.spec, self.weights_dtype, self.pretraining_tokens)

    @property
    def lora_fraction_of_params(self) -> float:
        return self.lora_params / self.params

    @property
    def parity_fraction_of_params(self) -> float:
        return self.parity_params / self.params

    @property
    def beyond_full_rank(self) -> bool:
        return self.rank > self.targets.smallest_full_rank

    def row(self, method: Method) -> MethodRow | None:
        return next((r for r in self.rows if r.method is method), None)

    def to_dict(self) -> dict[str, Any]:
        """Machine-readable: every key names its unit; plain numbers, no formatting."""
        spec = self.spec
        pretraining = self.pretraining_bytes_per_token
        return {
            "model": {
                "name": spec.name,
                "display_name": spec.display_name,
                "source": spec.source,
                "params": self.params,
                "active_params": self.active_params,
                "params_breakdown": dict(self.params_breakdown),
                "num_hidden_layers": spec.num_hidden_layers,
                "num_attention_heads": spec.num_attention_heads,
                "num_key_value_heads": spec.num_key_value_heads,
                "head_dim": spec.head_dim,
                "hidden_size": spec.hidden_size,
                "max_position_embeddings_tokens": spec.max_position_embeddings,
            },
            "query": {
                "tokens": self.tokens,
                "rank": self.rank,
                "targets": self.targets.label,
                "target_modules": list(self.targets.module_names),
                "target_parameters": list(self.targets.parameter_names),
                "experts": self.settings.experts.value,
                "kv_dtype": self.kv.dtype.value,
                "kv_bits_per_element": self.kv.dtype.bits,
                "kv_group_size_elements": self.kv.group_size if self.kv.quantised else None,
                "kv_zero_point": self.kv.zero_point if self.kv.quantised else None,
                "mla_cache": self.kv.mla.value if spec.is_mla else None,
                "window_cache": self.kv.window.value if spec.sliding_window is not None else None,
                "adapter_dtype": self.adapter_dtype.value,
                "adapter_bits_per_param": self.adapter_dtype.bits,
                "weights_dtype": self.weights_dtype.value,
                "weights_bits_per_param": self.weights_dtype.bits,
                "pretraining_tokens": self.pretraining_tokens,
                "virtual_tokens": self.settings.virtual_tokens,
            },
            "kv_cache": {
                "bytes_per_token": self.kv_bytes_per_token,
                "bytes_per_token_unbounded": self.kv_bytes_per_token_unbounded,
                "bytes": self.kv_cache_bytes,
            },
            "lora": {
                "params": self.lora_params,
                "bytes": self.lora_bytes,
                "bytes_per_token": self.lora_bytes_per_token,
                "fraction_of_model_params": self.lora_fraction_of_params,
                "smallest_full_rank": self.targets.smallest_full_rank,
            },
            "pretraining": {
                "weights_bytes": self.weights_bytes,
                "tokens": self.pretraining_tokens,
                "bytes_per_token": pretraining,
            },
            "methods": [
                {
                    "method": r.method.value,
                    "params": r.params,
                    "bytes": r.bytes,
                    "bytes_per_token": r.bytes_per_token,
                    "kv_to_this_bytes_ratio": r.kv_ratio,
                    "crossover_tokens": r.crossover_tokens,
                }
                for r in self.rows
            ],
            "kv_to_lora_bytes_ratio": self.ratio,
            "kv_to_pretraining_bytes_per_token_ratio": None
            if pretraining is None
            else self.kv_bytes_per_token / pretraining,
            "crossover_tokens": self.crossover_tokens,
            "parity_rank": self.parity_rank,
            "parity_lora_params": self.parity_params,
            "parity_fraction_of_model_params": self.parity_fraction_of_params,
        }


def check_rank(rank: int) -> None:
    if rank < 1:
        raise EstimatorError(f"rank {rank} must be at least 1; LoRA ranks are positive integers such as 8 or 32")


def _rows(
    spec: ModelSpec,
    tokens: int,
    methods: tuple[Method, ...],
    settings: Settings,
    kv: KVFormat,
    kv_bytes: int,
    adapter_dtype: DType,
    weights: tuple[int, int | None],
    total: int,
) -> tuple[tuple[MethodRow, ...], tuple[tuple[Method, str], ...]]:
    """One row per method; ``kv_bytes`` is the cache's size at T."""
    rows = []
    skipped = []
    for method in methods:
        if method is Method.kv:
            rows.append(MethodRow(method, None, kv_bytes, kv_bytes / tokens, 1.0, None))
        elif method is Method.pretraining:
            weights_total, pre_tokens = weights
            if pre_tokens is not None:
                per_token = weights_total / pre_tokens
                rows.append(MethodRow(method, total, weights_total, per_token, kv_bytes / tokens / per_token, None))
        elif method in TRAINED:
            try:
                params = method_params(spec, method, settings, kv, total)
            except MethodNotApplicableError as exc:  # e.g. DoRA on fused expert tensors: say why, keep the rest
                skipped.append((method, str(exc)))
                continue
            size = bits_to_bytes(params * adapter_dtype.bits)
            rows.append(
                MethodRow(method, params, size, size / tokens, kv_bytes / size, crossover_tokens(spec, size, kv))
            )
    return tuple(rows), tuple(skipped)


def estimate(
    spec: ModelSpec,
    tokens: int,
    rank: int = 32,
    targets: str | Targets = "all-linear",
    kv_dtype: KVFormat | DType = DType.bf16,
    adapter_dtype: DType = DType.bf16,
    weights_dtype: DType = DType.bf16,
    pretraining_tokens: int | None = None,
    methods: tuple[Method, ...] = tuple(Method),
    settings: Settings | None = None,
) -> Estimate:
    """Bytes for learning ``tokens`` tokens of text with ``spec``, each way in ``methods``.

    ``pretraining_tokens`` overrides the spec's published count; ``targets`` is a preset
    (all-linear, attention, mlp, qv) or a comma list (see :func:`estimator.adapters.resolve_targets`);
    ``settings`` holds the other methods' knobs (rank and targets given here take precedence).
    """
    if tokens < 1:
        raise EstimatorError(f"token count {tokens} must be positive; give at least 1 token")
    check_rank(rank)
    base = settings or Settings()
    label = targets.label if isinstance(targets, Targets) else targets
    settings = replace(base, rank=rank, targets=label)
    chosen = targets if isinstance(targets, Targets) else resolve_targets(spec, targets, settings.experts)
    kv = as_format(kv_dtype)
    kv_bytes = kv_cache_bytes(spec, tokens, kv)
    adapter = lora_bytes(chosen, rank, adapter_dtype)
    parity = parity_rank(chosen, kv_bytes, adapter_dtype)
    total = total_params(spec)
    pre_tokens = pretraining_tokens if pretraining_tokens is not None else spec.pretraining_tokens
    weights_total = weights_bytes(spec, weights_dtype)
    rows, skipped = _rows(
        spec, tokens, methods, settings, kv, kv_bytes, adapter_dtype, (weights_total, pre_tokens), total
    )
    return Estimate(
        spec=spec,
        tokens=tokens,
        settings=settings,
        targets=chosen,
        kv=kv,
        adapter_dtype=adapter_dtype,
        weights_dtype=weights_dtype,
        pretraining_tokens=pre_tokens,
        params=total,
        active_params=active_params(spec),
        params_breakdown=param_breakdown(spec),
        kv_bytes_per_token_unbounded=kv_bytes_per_token(spec, kv),
        kv_cache_bytes=kv_bytes,
        lora_params=lora_params(chosen, rank),
        lora_bytes=adapter,
        weights_bytes=weights_total,
        crossover_tokens=crossover_tokens(spec, adapter, kv),
        parity_rank=parity,
        parity_params=lora_params(chosen, parity),
        rows=rows,
        skipped=skipped,
        methods=methods,
    )

"""The query: one frozen value holding everything a question to the estimator fixes, validated on
construction (bad input raises :class:`~estimator.errors.EstimatorError` with the problem and the fix).

Every command builds one (:mod:`estimator.cli.options`), and so does the Python API: ``Query(spec,
tokens=100_000, rank=32)``; names of dtypes, methods and layouts may be given as strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.layout import ConvCache, ExpertLayout, KVFormat, MlaCache, WindowCache
from estimator.query.vocabulary import CORE, LoReFT, Method, parse_methods
from estimator.specs import ModelSpec
from estimator.units import KV_DTYPES, MAX_COUNT, MAX_RANK, STORAGE_DTYPES, DType, format_whole, parse_dtype

if TYPE_CHECKING:  # the frontier and peft's tuners are imported only by a query that names them
    from estimator.frontier.methods import KVMethod
    from estimator.stores.targets import Targets
    from estimator.stores.tuners import TunerOptions

ADAPTER_DTYPES = (DType.bf16, DType.fp16, DType.fp32)
MAX_TOKENS = MAX_COUNT  # 10^18 tokens: far beyond any corpus; larger counts are refused, never wrapped


def whole(value: object, what: str, fix: str, low: int = 1, high: int | None = None) -> int:
    """``value`` as a whole number in [low, high], or one line naming the problem and ``fix``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise EstimatorError(f"{what} must be a whole number, not {repr(value)[:60]}; {fix}")
    if value < low:
        raise EstimatorError(f"{what} {format_whole(value)} must be at least {low:,}; {fix}")
    if high is not None and value > high:
        raise EstimatorError(f"{what} {format_whole(value)} must be at most {high:,}; {fix}")
    return value


def choice(value: object, kind: type[StrEnum], what: str) -> Any:
    """An enum member from itself or its value (case-insensitive); one line listing the values otherwise."""
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        for member in kind:
            if member.value.lower() == value.strip().lower():
                return member
    raise EstimatorError(f"unknown {what} {value!r}; use one of: {', '.join(m.value for m in kind)}")


def as_kv_format(value: object) -> KVFormat:
    """A :class:`KVFormat` from itself, a dtype, or a dtype name (``"int4"``)."""
    if isinstance(value, KVFormat):
        fmt = value
    elif isinstance(value, DType | str):
        fmt = KVFormat(parse_dtype(str(value), "KV dtype", KV_DTYPES))
    else:
        raise EstimatorError(f"KV cache format {value!r} is not a KVFormat or dtype; give e.g. 'bf16' or 'int4'")
    if fmt.group_size is not None:
        whole(fmt.group_size, "--kv-group-size", "give a positive number of elements per scale, or None")
    floats = (DType.fp32, DType.bf16, DType.fp16)
    state = None if fmt.state_dtype is None else dtype_of(fmt.state_dtype, "recurrent state dtype", floats)
    return replace(
        fmt,
        mla=choice(fmt.mla, MlaCache, "MLA cache form"),
        window=choice(fmt.window, WindowCache, "window cache"),
        conv=choice(fmt.conv, ConvCache, "convolution cache"),
        state_dtype=state,
    )


def dtype_of(value: object, what: str, allowed: tuple[DType, ...]) -> DType:
    if not isinstance(value, DType | str):
        raise EstimatorError(f"{what} {value!r} is not a dtype name; use one of: {', '.join(d.value for d in allowed)}")
    dtype = parse_dtype(str(value), what, allowed)
    return dtype


@dataclass(frozen=True)
class Query:
    """Everything one question fixes: the model, the text's length, and how each store is shaped."""

    spec: ModelSpec
    tokens: int = 100_000
    rank: int = 32
    targets: str = "all-linear"
    methods: tuple[Method, ...] = CORE
    adapter_dtype: DType = DType.bf16
    kv: KVFormat = field(default_factory=KVFormat)
    weights_dtype: DType = DType.bf16
    pretraining_tokens: int | None = None  # None: the spec's published count
    experts: ExpertLayout = ExpertLayout.per_expert
    virtual_tokens: int = 20
    loreft: LoReFT = field(default_factory=LoReFT)
    ia3_targets: str | None = None  # None: peft's default for the family
    tuner_options: TunerOptions = ()  # peft tuners' knobs other than the rank (--tuner-option), each once
    kv_methods: tuple[KVMethod, ...] = ()  # cache-shrinking methods shown beside the cache (--kv-method)
    part: str = "language"  # --part: a multimodal checkpoint's language model, or "all": the whole model
    allow_beyond_full_rank: bool = False  # a LoRA rank above the smallest targeted dimension: refused unless allowed

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        if not isinstance(self.spec, ModelSpec):
            raise EstimatorError(f"the model must be a ModelSpec, not {type(self.spec).__name__}; use load_spec(name)")
        whole(self.tokens, "token count", "give at least 1 token", high=MAX_TOKENS)
        whole(self.rank, "rank", "LoRA ranks are positive integers such as 8 or 32", high=MAX_RANK)
        whole(self.virtual_tokens, "--virtual-tokens", "give a positive number such as 20", high=MAX_RANK)
        if self.pretraining_tokens is not None:
            whole(self.pretraining_tokens, "pretraining token count", "give e.g. 15T", high=MAX_TOKENS)
        if not isinstance(self.targets, str) or (
            self.ia3_targets is not None and not isinstance(self.ia3_targets, str)
        ):
            raise EstimatorError("targets must be text such as 'all-linear' or 'q,v'; give a string")
        set_(self, "methods", _methods(self.methods))
        set_(self, "adapter_dtype", dtype_of(self.adapter_dtype, "adapter dtype", ADAPTER_DTYPES))
        set_(self, "weights_dtype", dtype_of(self.weights_dtype, "weights dtype", STORAGE_DTYPES))
        set_(self, "kv", as_kv_format(self.kv))
        set_(self, "experts", choice(self.experts, ExpertLayout, "--experts"))
        _check_loreft(self.loreft, self.spec)
        set_(self, "tuner_options", _tuner_options(self.tuner_options))
        set_(self, "kv_methods", _kv_methods(self.kv_methods))
        if self.tuner_options:  # every option a knob of a chosen tuner (one no row reads is refused)
            from estimator.stores.tuner_kinds import check_tuner_options

            check_tuner_options(self.tuner_options, self.methods)
        set_(self, "part", _part(self.part))
        if self.part == "all":
            self.whole_model  # noqa: B018 - counted now, so a checkpoint whose parts are unknown fails here
        if not isinstance(self.allow_beyond_full_rank, bool):
            raise EstimatorError("allow_beyond_full_rank must be true or false")
        if self.beyond_full_rank and not self.allow_beyond_full_rank:  # resolving the targets validates the words
            fix = f"use --rank {self.resolved_targets.smallest_full_rank} or less, narrow --targets"
            raise EstimatorError(f"{self.full_rank_note()}; {fix}, or pass --allow-beyond-full-rank")

    @cached_property
    def resolved_targets(self) -> Targets:
        """The LoRA targets ``targets`` names in this model, resolved once and held."""
        from estimator.stores.targets import resolve_targets

        return resolve_targets(self.spec, self.targets, self.experts)

    @property
    def beyond_full_rank(self) -> bool:
        """The rank exceeds the smallest targeted dimension min(d_in, d_out): LoRA beyond full rank.
        Llama 3 70B, all-linear: the narrowest maps are k and v (8,192 -> 1,024), so rank 1,025 is beyond."""
        return self.rank > self.resolved_targets.smallest_full_rank

    def full_rank_note(self) -> str:
        """What a rank beyond full rank is, in the words every face uses (its refusal and its warning)."""
        targets = self.resolved_targets
        names = ", ".join(targets.narrowest())
        return (
            f"rank {self.rank:,} exceeds the smallest targeted dimension ({names}: {targets.smallest_full_rank:,}), "
            "LoRA beyond full rank"
        )

    @property
    def pretraining_tokens_or_published(self) -> int | None:
        return self.pretraining_tokens if self.pretraining_tokens is not None else self.spec.pretraining_tokens

    @cached_property
    def whole_model(self) -> tuple[int, dict[str, int], str]:
        """(parameters, parts outside the language model, how counted) of the whole checkpoint."""
        from estimator.whole_model import whole_model_of

        return whole_model_of(self.spec)

    @property
    def counted_params(self) -> int:
        """Parameters of the part counted (--part): the language model, or the whole checkpoint."""
        from estimator.architecture import total_params

        return self.whole_model[0] if self.part == "all" else total_params(self.spec)

    def with_(self, **changes: Any) -> Query:
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)


QUERY_FIELDS = tuple(f.name for f in fields(Query))
PARTS = ("language", "all")


def _part(value: object) -> str:
    """--part: ``language`` (a multimodal checkpoint's language model) or ``all`` (the whole checkpoint)."""
    if isinstance(value, str) and value.strip().lower() in PARTS:
        return value.strip().lower()
    raise EstimatorError(f"unknown --part {value!r}; use one of: {', '.join(PARTS)}")


def _methods(value: object) -> tuple[Method, ...]:
    """Methods from Method members or names, the KV cache first (the yardstick), without repeats."""
    if isinstance(value, str):
        return parse_methods(value)
    if not isinstance(value, tuple | list) or not value:
        raise EstimatorError(f"methods {value!r} must be a non-empty tuple of methods; give e.g. ('kv', 'lora')")
    return parse_methods(",".join(m.value if isinstance(m, Method) else str(m) for m in value))


def _kv_methods(value: object) -> tuple[KVMethod, ...]:
    """Cache-shrinking methods from ``"nvfp4,commvq:bits=1"`` or a tuple of :class:`KVMethod` values."""
    if value in ("", ()):
        return ()
    from estimator.frontier import parse_kv_methods
    from estimator.frontier.methods import KVMethod

    if isinstance(value, str):
        return parse_kv_methods(value) if value.strip() else ()
    if not isinstance(value, tuple | list) or not all(isinstance(m, KVMethod) for m in value):
        raise EstimatorError(f"kv_methods {value!r} must be text such as 'nvfp4,commvq:bits=1' or KVMethod values")
    return parse_kv_methods(",".join(m.text for m in value)) if value else ()


def _tuner_options(value: object) -> TunerOptions:
    """Tuner knobs from ``"n_frequency=2000,u=32"``, a mapping or pairs; each read as its peft default's type."""
    if value in ("", (), {}):
        return ()
    from estimator.stores.tuner_kinds import parse_tuner_options

    if isinstance(value, str):
        return parse_tuner_options(value)
    if isinstance(value, dict):
        pairs: Any = tuple(value.items())
    elif isinstance(value, tuple | list):
        pairs = value
    else:
        raise EstimatorError(f"tuner_options {value!r} must be text such as 'n_frequency=2000' or name-value pairs")
    try:
        text = ",".join(f"{name}={str(knob).lower() if isinstance(knob, bool) else knob}" for name, knob in pairs)
    except (TypeError, ValueError):
        raise EstimatorError(f"tuner_options {value!r} must be name-value pairs; give e.g. (('u', 32),)") from None
    return parse_tuner_options(text)


def _check_loreft(loreft: object, spec: ModelSpec) -> None:
    if not isinstance(loreft, LoReFT):
        raise EstimatorError(f"loreft must be a LoReFT, not {type(loreft).__name__}; give LoReFT(rank=8)")
    whole(loreft.rank, "--loreft-rank", "give a positive rank such as 8", high=MAX_RANK)
    for value, what in (
        (loreft.prefix_positions, "LoReFT first positions"),
        (loreft.suffix_positions, "LoReFT last positions"),
    ):
        whole(value, what, "give 0 or more positions", low=0, high=MAX_RANK)
    if loreft.prefix_positions + loreft.suffix_positions == 0:
        raise EstimatorError("LoReFT positions select none; give e.g. f7+l7")
    if loreft.layers is not None:
        bad = [
            i
            for i in loreft.layers
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < spec.num_hidden_layers
        ]
        if bad or not loreft.layers:
            raise EstimatorError(
                f"LoReFT layers {list(loreft.layers)}: {spec.display_name} has layers 0 to "
                f"{spec.num_hidden_layers - 1}; give indices in that range or all"
            )

"""The question's options, declared once for every face: name, default, help, how a client gives it, and
the closed set of values it takes. The CLI turns each :class:`Option` into a typer option
(:mod:`estimator.cli.options`), the server into ``GET /api/options`` (:mod:`estimator.web.options`), and the
page builds its inputs and ``<select>`` lists from that; none of them declares an option, a default or a
choice of its own. :func:`build_query` reads the values the same way for all of them.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields, replace
from enum import StrEnum
from os import PathLike
from pathlib import Path
from typing import Any

from estimator.errors import EstimatorError
from estimator.layout import ConvCache, ExpertLayout, KVFormat, MlaCache, WindowCache
from estimator.query.model import ADAPTER_DTYPES, PARTS, Query, dtype_of, whole
from estimator.query.vocabulary import CORE, LoReFT, Method, parse_layers, parse_methods, parse_positions
from estimator.specs import ModelSpec
from estimator.units import KV_DTYPES, STORAGE_DTYPES, DType, format_tokens_short

DEFAULT_MODEL = "llama3-70b"
# Every default is declared once, on the value that holds it (Query, KVFormat, LoReFT); the options show it.
_QUERY = {f.name: f.default for f in fields(Query) if f.default is not MISSING}
_KV, _REFT = KVFormat(), LoReFT()


def _shown(value: object) -> object:
    """A default as a client gives it: an enum member by its value."""
    return getattr(value, "value", value)


STATE_DTYPES = ("auto", DType.fp32.value, DType.bf16.value, DType.fp16.value)  # auto: the cache's float dtype


class Kind(StrEnum):
    """How a client gives an option's value."""

    text = "text"
    integer = "integer"
    number = "number"  # a real number: 0.9
    flag = "flag"
    path = "path"  # a file on the machine that runs the CLI


def _values(items: Any) -> tuple[str, ...]:
    return tuple(str(getattr(item, "value", item)) for item in items)


@dataclass(frozen=True, kw_only=True)
class Option:
    """One option of the question. ``flags``: the CLI's spellings (default ``--name-with-dashes``; a flag's
    ``--x/--no-x`` pair); ``choices``: the closed set of values (None: open, such as a token count);
    ``words``: the values a comma list is made of (``--methods``); ``optional``: None is a value (unset);
    ``from_client``: False for what names a file on the machine that answers (never taken from a web client)."""

    name: str
    default: object
    help: str
    kind: Kind = Kind.text
    flags: tuple[str, ...] = ()
    choices: tuple[str, ...] | None = None
    words: tuple[str, ...] | None = None
    optional: bool = False
    from_client: bool = True

    @property
    def cli_flags(self) -> tuple[str, ...]:
        return self.flags or (f"--{self.name.replace('_', '-')}",)


OPTIONS: tuple[Option, ...] = (
    Option(name="model", default=None, optional=True, flags=("--model", "-m"),
           help="Zoo model name (see `estimate models`)."),
    Option(name="config", default=None, optional=True, kind=Kind.path, from_client=False, flags=("--config", "-c"),
           help="A config.json, a model folder, a .gguf file, or a repo id in the local Hub cache."),
    Option(name="name", default=None, optional=True, from_client=False,
           help="Name a --config model (default: its config's name, or the file's)."),
    Option(name="tokens", default=format_tokens_short(_QUERY["tokens"]), flags=("--tokens", "-t"),
           help="Tokens of new text: 100k, 1.5M, 2B, 1e5, 100_000."),
    Option(name="rank", default=_QUERY["rank"], kind=Kind.integer, flags=("--rank", "-r"), help="LoRA rank."),
    Option(name="targets", default=_QUERY["targets"],
           help="LoRA targets: all-linear, attention, mlp, qv, or a comma list (q,k,v,o,gate,up,down,qkv,...)."),
    Option(name="methods", default="all", words=_values(Method),
           help="Rows to show: all, or a comma list of kv, lora, dora, ia3, loreft, prefix, prompt, full, "
                "pretraining, peft's other tuners by name (vera, lokr, ...) or peft for all of them."),
    Option(name="adapter_dtype", default=_shown(_QUERY["adapter_dtype"]), choices=_values(ADAPTER_DTYPES),
           help="Adapter storage: bf16, fp16, fp32."),
    Option(name="kv_dtype", default=_shown(_KV.dtype), choices=_values(KV_DTYPES),
           help="KV cache storage: fp32, bf16, fp16, fp8, int8, int4, int2."),
    Option(name="kv_group_size", default=_KV.group_size or 0, kind=Kind.integer,
           help="Elements per fp16 scale of an int8/int4/int2 KV cache; 0: one scale per tensor."),
    Option(name="kv_zero_point", default=_KV.zero_point, kind=Kind.flag, flags=("--kv-zero-point/--no-kv-zero-point",),
           help="An fp16 zero point per group too."),
    Option(name="weights_dtype", default=_shown(_QUERY["weights_dtype"]), choices=_values(STORAGE_DTYPES),
           help="Weight storage for the pretraining row: fp32, bf16, fp16, fp8, int8."),
    Option(name="pretraining_tokens", default=_QUERY["pretraining_tokens"], optional=True,
           help="Override the published pretraining token count (e.g. 15T)."),
    Option(name="experts", default=_shown(_QUERY["experts"]), choices=_values(ExpertLayout),
           help="MoE experts for adapters: per-expert, fused (transformers >= 5), none."),
    Option(name="mla_cache", default=_shown(_KV.mla), choices=_values(MlaCache),
           help="MLA cache (DeepSeek): latent (serving engines, transformers >= 5) or expanded (per head)."),
    Option(name="window_cache", default=_shown(_KV.window), choices=_values(WindowCache),
           help="Tokens a full sliding window keeps: w (ring buffer) or w-1 (transformers)."),
    Option(name="conv_cache", default=_shown(_KV.conv), choices=_values(ConvCache),
           help="Inputs a convolution state keeps: K-1 (vLLM, SGLang, llama.cpp) or K (transformers)."),
    Option(name="state_dtype", default=_shown(_KV.state_dtype or "auto"), choices=STATE_DTYPES,
           help="Recurrent state dtype (Mamba, DeltaNet): auto (the cache's float dtype, as engines), fp32, bf16, "
                "fp16; transformers keeps fp32 for some families."),
    Option(name="virtual_tokens", default=_QUERY["virtual_tokens"], kind=Kind.integer,
           help="Virtual tokens of prefix and prompt tuning."),
    Option(name="loreft_rank", default=_REFT.rank, kind=Kind.integer, help="LoReFT rank."),
    Option(name="loreft_layers", default="all" if _REFT.layers is None else ",".join(map(str, _REFT.layers)),
           help="LoReFT layers: all, or indices such as 0,4,8."),
    Option(name="loreft_positions", default=f"f{_REFT.prefix_positions}+l{_REFT.suffix_positions}",
           help="LoReFT positions: f7+l7 (first 7 and last 7), f5, l3."),
    Option(name="loreft_untied", default=not _REFT.tied, kind=Kind.flag,
           help="Separate interventions for prefix and suffix."),
    Option(name="ia3_targets", default=_QUERY["ia3_targets"], optional=True,
           help="IA3 targets (a comma list as --targets); default: peft's for the model."),
    Option(name="tuner_option", default=None, optional=True,
           help="Knobs of peft's tuners other than the rank (--rank), e.g. n_frequency=2000,u=32; default: peft's."),
    Option(name="kv_method", default=None, optional=True,
           help="Cache-shrinking methods to show beside the cache, a comma list, parameters after ':' parted by "
                "';': nvfp4, turboquant:bits=3.5, commvq:bits=1, kvtc:ratio=20, mha2mla:rank=64;rope=8, "
                "transmla:rank=512;rope=64, kvzip:keep=0.3, kvzap:keep=0.3, dms:ratio=8, rkv:keep=0.1, "
                "cartridge:tokens=2048."),
    Option(name="allow_beyond_full_rank", default=_QUERY["allow_beyond_full_rank"], kind=Kind.flag,
           help="Allow a LoRA rank above the smallest targeted dimension (refused otherwise)."),
    Option(name="part", default=_QUERY["part"], choices=PARTS,
           help="Parameters of a multimodal checkpoint: language (its language model) or all (the whole model, "
                "vision tower and projector included) for full fine-tuning, pretraining and the headline."),
)  # fmt: skip
OPTION = {option.name: option for option in OPTIONS}
OPTION_NAMES = tuple(OPTION)
# The options a command that answers another question takes (the rest keep their defaults): serving reads
# the model and its cache's format; fine-tuning the model and the adapter.
MODEL_OPTIONS = ("model", "config", "name", "tokens")
CACHE_OPTIONS = ("kv_dtype", "kv_group_size", "kv_zero_point", "mla_cache", "window_cache", "conv_cache", "state_dtype")
SERVING_OPTIONS = (*MODEL_OPTIONS, *CACHE_OPTIONS, "weights_dtype", "kv_method", "part")
TRAINING_OPTIONS = (*MODEL_OPTIONS, "rank", "targets", "experts", "allow_beyond_full_rank", "part")


def defaults() -> dict[str, Any]:
    """Every option's default, by name."""
    return {option.name: option.default for option in OPTIONS}


def complete(values: dict[str, Any], offered: tuple[str, ...], own: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every option's value for a command that offers only ``offered``: the values given, else the command's
    own defaults (``own``), else the option's. A command that does not offer ``allow_beyond_full_rank`` does
    not answer for one LoRA rank (serving reads no rank; a sweep marks each rank beyond full rank), so its
    query allows any rank."""
    chosen = {**defaults(), **(own or {}), **{key: value for key, value in values.items() if key in offered}}
    if "allow_beyond_full_rank" not in offered:
        chosen["allow_beyond_full_rank"] = True
    return chosen


def spec_of(model: str | None, config: Path | None, default_model: str | None = None, name: str | None = None) -> Any:
    """The spec of ``--model`` (a zoo name only) or ``--config`` (a config.json, named ``--name``); the
    default model, or one line asking for a model."""
    if model is not None and config is not None:
        raise EstimatorError("--model and --config exclude each other; give one, not both")
    if name is not None and config is None:
        raise EstimatorError("--name names a --config model; drop it, or give --config")
    if name is not None and not name.strip():
        raise EstimatorError("--name is empty; give a name such as my-model")
    if config is not None:
        from estimator.checkpoint.locate import spec_from_path

        return spec_from_path(config, name)
    from estimator.zoo import load_spec

    if model is not None:
        return load_spec(model)
    if default_model is not None:
        return load_spec(default_model)
    raise EstimatorError("no model given; pass --model NAME (see `estimate models`) or --config path/to/config.json")


def build_query(values: dict[str, Any], default_model: str | None = None, spec: Any = None) -> Query:
    """The query the option ``values`` describe (any option left out keeps its default), read by
    :func:`~estimator.query.model.query_from_options`, which every face shares."""
    given = {**defaults(), **values}
    unknown = sorted(set(given) - set(OPTION))
    if unknown:
        raise EstimatorError(f"unknown option {unknown[0]!r}; use one of: {', '.join(OPTION)}")
    chosen = spec if spec is not None else spec_of(given["model"], given["config"], default_model, given["name"])
    rest = {key: value for key, value in given.items() if key not in ("model", "config", "name")}
    return query_from_options(chosen, **rest)


def _count(value: object, what: str) -> int:
    """A count given as a whole number or as text such as ``"1M"`` or ``"15T"`` (as the CLI reads it)."""
    from estimator.units import parse_tokens

    return parse_tokens(value, what) if isinstance(value, str) else whole(value, what, "give e.g. 100_000 or '100k'")


def query_from_options(
    spec: ModelSpec | str | PathLike[str],
    tokens: int | str = _QUERY["tokens"],
    rank: int = _QUERY["rank"],
    targets: str = _QUERY["targets"],
    kv_dtype: KVFormat | DType | str = _KV.dtype,
    adapter_dtype: DType | str = _QUERY["adapter_dtype"],
    weights_dtype: DType | str = _QUERY["weights_dtype"],
    pretraining_tokens: int | str | None = None,
    methods: tuple[Method | str, ...] | str = CORE,
    experts: ExpertLayout | str = _QUERY["experts"],
    virtual_tokens: int = _QUERY["virtual_tokens"],
    loreft: LoReFT | None = None,
    ia3_targets: str | None = None,
    *,
    kv_group_size: int | None = None,
    kv_zero_point: bool | None = None,
    mla_cache: MlaCache | str | None = None,
    window_cache: WindowCache | str | None = None,
    conv_cache: ConvCache | str | None = None,
    state_dtype: DType | str | None = None,
    loreft_rank: int | None = None,
    loreft_layers: str | None = None,
    loreft_positions: str | None = None,
    loreft_untied: bool | None = None,
    name: str | None = None,
    tuner_option: str | None = None,
    kv_method: str | None = None,
    part: str = _QUERY["part"],
    allow_beyond_full_rank: bool = _QUERY["allow_beyond_full_rank"],
) -> Query:
    """The query of every option the CLI takes, by the CLI's names and in its words.

    ``spec``: a ModelSpec, a zoo name (``"llama3-70b"``) or a path (config.json, model folder, GGUF file;
    ``name`` names it); ``tokens`` and ``pretraining_tokens``: counts or text (``"1M"``, ``"15T"``);
    ``methods``: a tuple or ``"kv,lora"`` / ``"all"``. The cache conventions (``kv_group_size`` (0: one
    scale per tensor), ``kv_zero_point``, ``mla_cache`` latent/expanded, ``window_cache`` w/w-1,
    ``conv_cache`` K-1/K, ``state_dtype`` auto/fp32/bf16/fp16) and the LoReFT shape (``loreft_rank``,
    ``loreft_layers`` "all" or "0,4,8", ``loreft_positions`` "f7+l7", ``loreft_untied``) refine
    ``kv_dtype`` and ``loreft``; None keeps the default (KVFormat(): group 64 with zero points, latent,
    w, K-1, the cache's dtype). ``kv_method``: cache-shrinking methods shown beside the cache, as
    ``"nvfp4,commvq:bits=1,mha2mla:rank=64;rope=8"``. ``part``: ``"language"`` (a multimodal checkpoint's
    language model) or ``"all"`` (the whole checkpoint's parameters for full fine-tuning, pretraining and the
    headline; the cache and adapters stay the language model's). ``allow_beyond_full_rank``: a rank above the
    smallest targeted dimension is refused unless this is set. Bad input raises
    :class:`~estimator.errors.EstimatorError`.
    """

    model = _spec_of(spec, name)
    conventions = {"group_size": kv_group_size, "zero_point": kv_zero_point, "mla": mla_cache,
                   "window": window_cache, "conv": conv_cache, "state_dtype": state_dtype}  # fmt: skip
    given: dict[str, Any] = {key: value for key, value in conventions.items() if value is not None}
    kv = kv_dtype if isinstance(kv_dtype, KVFormat) else KVFormat(dtype_of(kv_dtype, "KV dtype", KV_DTYPES))
    if "group_size" in given:
        given["group_size"] = (
            whole(kv_group_size, "--kv-group-size", "give e.g. 64, or 0 for one scale per tensor", low=0) or None
        )
    if isinstance(state_dtype, str) and state_dtype.strip().lower() == "auto":
        given["state_dtype"] = None
    shape = {"rank": loreft_rank, "layers": loreft_layers, "positions": loreft_positions, "untied": loreft_untied}
    reft = loreft if loreft is not None else LoReFT()
    if any(value is not None for value in shape.values()):
        if loreft is not None:
            raise EstimatorError("loreft and loreft_rank/layers/positions/untied exclude each other; give one")
        first, last = parse_positions(loreft_positions or str(OPTION["loreft_positions"].default))
        layers = parse_layers(loreft_layers or "all", model)
        reft = LoReFT(_REFT.rank if loreft_rank is None else loreft_rank, layers, first, last, not loreft_untied)
    return Query(
        model,
        _count(tokens, "token count"),
        rank,
        targets,
        parse_methods(methods) if isinstance(methods, str) else methods,  # type: ignore[arg-type]
        adapter_dtype,  # type: ignore[arg-type]  # names are read by the query
        replace(kv, **given),
        weights_dtype,  # type: ignore[arg-type]
        None if pretraining_tokens is None else _count(pretraining_tokens, "pretraining token count"),
        experts,  # type: ignore[arg-type]
        virtual_tokens,
        reft,
        ia3_targets,
        tuner_option or (),  # type: ignore[arg-type]  # text is read by the query
        kv_methods=kv_method or (),  # type: ignore[arg-type]  # text is read by the query
        part=part,
        allow_beyond_full_rank=allow_beyond_full_rank,
    )


def _spec_of(spec: object, name: str | None) -> ModelSpec:
    """A ModelSpec as given, a zoo model by name, or a config read from a path."""
    if isinstance(spec, ModelSpec):
        if name is not None:
            raise EstimatorError("name names a model read from a path; drop it, or give the path")
        return spec
    if isinstance(spec, PathLike):
        from pathlib import Path

        from estimator.checkpoint.locate import spec_from_path

        return spec_from_path(Path(spec), name)
    if isinstance(spec, str):
        from estimator.zoo import load_spec

        if name is not None:
            raise EstimatorError("name names a model read from a path; give the path as a pathlib.Path")
        return load_spec(spec)
    raise EstimatorError(f"the model must be a ModelSpec, a zoo name or a path, not {type(spec).__name__}")

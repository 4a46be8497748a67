"""Every option of the query, declared once, and the decorator that gives them all to a command.

A command decorated with :func:`query_command` receives ``query`` (a validated
:class:`~estimator.query.Query`); its own parameters come first, and a parameter of the same name as
a query option replaces that option (``sweep`` reads ``--tokens`` as a grid). ``tests/test_cli.py``
introspects the CLI and fails when a command that takes a query lacks one of these options.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from estimator.errors import EstimatorError

DEFAULT_MODEL = "llama3-70b"

ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Zoo model name (see `estimate models`).")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="A config.json, a model folder, a .gguf file, or a repo id in the local Hub cache."
    ),
]
NameOpt = Annotated[
    str | None, typer.Option("--name", help="Name a --config model (default: its config's name, or the file's).")
]
TokensOpt = Annotated[str, typer.Option("--tokens", "-t", help="Tokens of new text: 100k, 1.5M, 2B, 1e5, 100_000.")]
RankOpt = Annotated[int, typer.Option("--rank", "-r", help="LoRA rank.")]
TargetsOpt = Annotated[
    str,
    typer.Option(help="LoRA targets: all-linear, attention, mlp, qv, or a comma list (q,k,v,o,gate,up,down,qkv,...)."),
]
MethodsOpt = Annotated[
    str,
    typer.Option(
        help="Rows to show: all, or a comma list of kv, lora, dora, ia3, loreft, prefix, prompt, full, pretraining, "
        "peft's other tuners by name (vera, lokr, ...) or peft for all of them."
    ),
]
AdapterDtypeOpt = Annotated[str, typer.Option(help="Adapter storage: bf16, fp16, fp32.")]
KvDtypeOpt = Annotated[str, typer.Option(help="KV cache storage: fp32, bf16, fp16, fp8, int8, int4, int2.")]
GroupOpt = Annotated[
    int, typer.Option(help="Elements per fp16 scale of an int8/int4/int2 KV cache; 0: one scale per tensor.")
]
ZeroOpt = Annotated[bool, typer.Option("--kv-zero-point/--no-kv-zero-point", help="An fp16 zero point per group too.")]
WeightsDtypeOpt = Annotated[
    str, typer.Option(help="Weight storage for the pretraining row: fp32, bf16, fp16, fp8, int8.")
]
PretrainingOpt = Annotated[str | None, typer.Option(help="Override the published pretraining token count (e.g. 15T).")]
ExpertsOpt = Annotated[str, typer.Option(help="MoE experts for adapters: per-expert, fused (transformers >= 5), none.")]
MlaOpt = Annotated[
    str, typer.Option(help="MLA cache (DeepSeek): latent (serving engines, transformers >= 5) or expanded (per head).")
]
WindowOpt = Annotated[
    str, typer.Option(help="Tokens a full sliding window keeps: w (ring buffer) or w-1 (transformers).")
]
ConvOpt = Annotated[
    str, typer.Option(help="Inputs a convolution state keeps: K-1 (vLLM, SGLang, llama.cpp) or K (transformers).")
]
StateOpt = Annotated[
    str,
    typer.Option(help="Recurrent state dtype (Mamba, DeltaNet): auto (the cache's float dtype, as engines), fp32, "
                 "bf16, fp16; transformers keeps fp32 for some families."),
]  # fmt: skip
VirtualOpt = Annotated[int, typer.Option(help="Virtual tokens of prefix and prompt tuning.")]
ReftRankOpt = Annotated[int, typer.Option(help="LoReFT rank.")]
ReftLayersOpt = Annotated[str, typer.Option(help="LoReFT layers: all, or indices such as 0,4,8.")]
ReftPositionsOpt = Annotated[str, typer.Option(help="LoReFT positions: f7+l7 (first 7 and last 7), f5, l3.")]
ReftUntiedOpt = Annotated[bool, typer.Option("--loreft-untied", help="Separate interventions for prefix and suffix.")]
Ia3Opt = Annotated[
    str | None, typer.Option(help="IA3 targets (a comma list as --targets); default: peft's for the model.")
]
TunerOpt = Annotated[
    str | None,
    typer.Option(
        "--tuner-option",
        help="Knobs of peft's tuners other than the rank (--rank), e.g. n_frequency=2000,u=32; default: peft's.",
    ),
]
KvMethodOpt = Annotated[
    str | None,
    typer.Option(
        "--kv-method",
        help="Cache-shrinking methods to show beside the cache, a comma list, parameters after ':' parted by ';': "
        "nvfp4, turboquant:bits=3.5, commvq:bits=1, kvtc:ratio=20, mha2mla:rank=64;rope=8, transmla:rank=512;rope=64, "
        "kvzip:keep=0.3, kvzap:keep=0.3, dms:ratio=8, rkv:keep=0.1, cartridge:tokens=2048.",
    ),
]
PartOpt = Annotated[
    str,
    typer.Option(
        help="Parameters of a multimodal checkpoint: language (its language model) or all (the whole model, "
        "vision tower and projector included) for full fine-tuning, pretraining and the headline."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON; every key names its unit.")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="One CSV row per mechanism.")]

# name, annotation, default: the query's options in the order --help lists them.
QUERY_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("model", ModelOpt, None),
    ("config", ConfigOpt, None),
    ("name", NameOpt, None),
    ("tokens", TokensOpt, "100k"),
    ("rank", RankOpt, 32),
    ("targets", TargetsOpt, "all-linear"),
    ("methods", MethodsOpt, "all"),
    ("adapter_dtype", AdapterDtypeOpt, "bf16"),
    ("kv_dtype", KvDtypeOpt, "bf16"),
    ("kv_group_size", GroupOpt, 64),
    ("kv_zero_point", ZeroOpt, True),
    ("weights_dtype", WeightsDtypeOpt, "bf16"),
    ("pretraining_tokens", PretrainingOpt, None),
    ("experts", ExpertsOpt, "per-expert"),
    ("mla_cache", MlaOpt, "latent"),
    ("window_cache", WindowOpt, "w"),
    ("conv_cache", ConvOpt, "K-1"),
    ("state_dtype", StateOpt, "auto"),
    ("virtual_tokens", VirtualOpt, 20),
    ("loreft_rank", ReftRankOpt, 8),
    ("loreft_layers", ReftLayersOpt, "all"),
    ("loreft_positions", ReftPositionsOpt, "f7+l7"),
    ("loreft_untied", ReftUntiedOpt, False),
    ("ia3_targets", Ia3Opt, None),
    ("tuner_option", TunerOpt, None),
    ("kv_method", KvMethodOpt, None),
    ("part", PartOpt, "language"),
)
QUERY_OPTION_NAMES = tuple(name for name, _, _ in QUERY_OPTIONS)
# The query options a command that answers another question takes (the rest keep their defaults and stay
# out of its --help): serving reads the model and its cache's format; fine-tuning the model and the adapter.
MODEL_OPTIONS = ("model", "config", "name", "tokens")
CACHE_OPTIONS = ("kv_dtype", "kv_group_size", "kv_zero_point", "mla_cache", "window_cache", "conv_cache", "state_dtype")
# serve-memory's own --weights-dtype replaces the query's
SERVING_OPTIONS = (*MODEL_OPTIONS, *CACHE_OPTIONS, "weights_dtype", "kv_method")
TRAINING_OPTIONS = (*MODEL_OPTIONS, "rank", "targets", "experts")


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


def _at_least(value: int, option: str, low: int = 1, fix: str = "give a positive integer") -> None:
    if value < low:
        raise EstimatorError(f"{option} {value} must be at least {low}; {fix}")


def state_dtype_of(text: str) -> Any:
    """``--state-dtype``: auto (None: the cache's float dtype) or fp32, bf16, fp16."""
    from estimator.units import DType, parse_dtype

    if text.strip().lower() == "auto":
        return None
    return parse_dtype(text, "state dtype", (DType.fp32, DType.bf16, DType.fp16))


def build_query(values: dict[str, Any], default_model: str | None = None, spec: Any = None) -> Any:
    """The query the option ``values`` describe, each read with its option's name in any error."""
    from estimator.layout import ConvCache, ExpertLayout, KVFormat, MlaCache, WindowCache
    from estimator.query import ADAPTER_DTYPES, Query, choice
    from estimator.query.vocabulary import LoReFT, parse_layers, parse_methods, parse_positions
    from estimator.units import KV_DTYPES, parse_dtype, parse_tokens

    spec = spec if spec is not None else spec_of(values["model"], values["config"], default_model, values["name"])
    _at_least(values["rank"], "rank", fix="LoRA ranks are positive integers such as 8 or 32")
    _at_least(values["virtual_tokens"], "--virtual-tokens")
    _at_least(values["loreft_rank"], "--loreft-rank")
    if values["kv_group_size"] < 0:
        raise EstimatorError(
            f"--kv-group-size {values['kv_group_size']} must not be negative; give e.g. 64, or 0 for one scale "
            "per tensor"
        )
    kv = KVFormat(
        parse_dtype(values["kv_dtype"], "KV dtype", KV_DTYPES),
        values["kv_group_size"] or None,
        values["kv_zero_point"],
        choice(values["mla_cache"], MlaCache, "--mla-cache"),
        choice(values["window_cache"], WindowCache, "--window-cache"),
        choice(values["conv_cache"], ConvCache, "--conv-cache"),
        state_dtype_of(values["state_dtype"]),
    )
    first, last = parse_positions(values["loreft_positions"])
    pretraining = values["pretraining_tokens"]
    return Query(
        spec,
        parse_tokens(values["tokens"]),
        values["rank"],
        values["targets"],
        parse_methods(values["methods"]),
        parse_dtype(values["adapter_dtype"], "adapter dtype", ADAPTER_DTYPES),
        kv,
        parse_dtype(values["weights_dtype"], "weights dtype"),
        parse_tokens(pretraining) if pretraining is not None else None,
        choice(values["experts"], ExpertLayout, "--experts"),
        values["virtual_tokens"],
        LoReFT(
            values["loreft_rank"], parse_layers(values["loreft_layers"], spec), first, last, not values["loreft_untied"]
        ),
        values["ia3_targets"],
        values["tuner_option"] or (),
        kv_methods=values["kv_method"] or (),
        part=values.get("part", "language"),
    )


def query_command(
    *,
    default_model: str | None = DEFAULT_MODEL,
    defaults: dict[str, Any] | None = None,
    build: bool = True,
    only: tuple[str, ...] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command every query option. It is called with ``query`` (built and validated), or with
    ``options`` (the raw values, for a command that builds its queries itself) when ``build`` is False.

    ``default_model``: the model when neither --model nor --config is given (None: one is required);
    ``defaults``: other defaults for this command (``{"methods": "kv,lora,pretraining"}``);
    ``only``: the query options this command takes (the others keep their defaults, out of its --help).
    """
    chosen = dict(defaults or {})
    offered = QUERY_OPTION_NAMES if only is None else only

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(func, eval_str=True)
        kept = [p for p in own.parameters.values() if p.name not in ("query", "options")]
        taken = {p.name for p in kept}
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=chosen.get(name, default), annotation=kind)
            for name, kind, default in QUERY_OPTIONS
            if name not in taken and name in offered
        ]
        names = [p.name for p in added]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in names}
            for name, _, default in QUERY_OPTIONS:  # a command's own option replaces the query's
                values.setdefault(name, chosen.get(name, default))
            if not build:
                return func(*args, options=values, **kwargs)
            return func(*args, query=build_query(values, default_model), **kwargs)

        positional = [p for p in kept if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in kept if p not in positional]
        wrapper.__signature__ = own.replace(parameters=[*positional, *keyword, *added])  # type: ignore[attr-defined]
        wrapper.query_options = tuple(offered)  # type: ignore[attr-defined]
        return wrapper

    return decorate

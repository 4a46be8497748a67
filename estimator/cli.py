"""The ``estimate`` command: thin wrappers over :mod:`estimator.compare`, printing only.

Bad input of any kind becomes one line on stderr, ``error: <problem>; <fix>``, and exit status 2.
The plain query imports neither numpy, pandas, matplotlib nor torch.
"""

from __future__ import annotations

import csv
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from estimator.errors import EstimatorError

try:  # typer >= 0.24 carries its own copy of click
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover - older typer on real click
    from click.exceptions import ClickException, UsageError  # type: ignore[assignment]

app = typer.Typer(
    add_completion=False,
    invoke_without_command=True,
    help="Bytes per token for each way of teaching a model new text: the KV cache (in context), adapters "
    "(LoRA, DoRA, IA3, LoReFT, prefix and prompt tuning), full fine-tuning, pretraining.",
    epilog="Example: estimate --model llama3-70b --tokens 100k --rank 32",
)

EXIT_BAD_INPUT = 2

ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Zoo model name (see `estimate models`).")]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="A Hugging Face config.json instead of a zoo name.")
]
TokensOpt = Annotated[str, typer.Option("--tokens", "-t", help="Tokens of new text: 100k, 1.5M, 2B, 1e5, 100_000.")]
RankOpt = Annotated[int, typer.Option("--rank", "-r", help="LoRA rank.")]
TargetsOpt = Annotated[
    str,
    typer.Option(help="LoRA targets: all-linear, attention, mlp, qv, or a comma list (q,k,v,o,gate,up,down,qkv,...)."),
]
AdapterDtypeOpt = Annotated[str, typer.Option(help="Adapter storage: bf16, fp16, fp32.")]
KvDtypeOpt = Annotated[str, typer.Option(help="KV cache storage: fp32, bf16, fp16, fp8, int8, int4, int2.")]
WeightsDtypeOpt = Annotated[
    str, typer.Option(help="Weight storage for the pretraining row: fp32, bf16, fp16, fp8, int8.")
]
PretrainingOpt = Annotated[str | None, typer.Option(help="Override the published pretraining token count (e.g. 15T).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON; every key names its unit.")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="One CSV row per mechanism.")]
BeyondOpt = Annotated[
    bool,
    typer.Option(
        "--allow-beyond-full-rank",
        help="Compute a rank above the smallest targeted dimension (LoRA beyond full rank).",
    ),
]

ADAPTER_DTYPES = ("bf16", "fp16", "fp32")


MethodsOpt = Annotated[
    str,
    typer.Option(
        help="Rows to show: all, or a comma list of kv, lora, dora, ia3, loreft, prefix, prompt, full, pretraining."
    ),
]
ExpertsOpt = Annotated[str, typer.Option(help="MoE experts for adapters: per-expert, fused (transformers >= 5), none.")]
MlaOpt = Annotated[
    str, typer.Option(help="MLA cache (DeepSeek): latent (serving engines, transformers >= 5) or expanded (per head).")
]
WindowOpt = Annotated[
    str, typer.Option(help="Tokens a full sliding window keeps: w (ring buffer) or w-1 (transformers).")
]
GroupOpt = Annotated[
    int, typer.Option(help="Elements per fp16 scale of an int8/int4/int2 KV cache; 0: one scale per tensor.")
]
ZeroOpt = Annotated[bool, typer.Option("--kv-zero-point/--no-kv-zero-point", help="An fp16 zero point per group too.")]
VirtualOpt = Annotated[int, typer.Option(help="Virtual tokens of prefix and prompt tuning.")]
ReftRankOpt = Annotated[int, typer.Option(help="LoReFT rank.")]
ReftLayersOpt = Annotated[str, typer.Option(help="LoReFT layers: all, or indices such as 0,4,8.")]
ReftPositionsOpt = Annotated[str, typer.Option(help="LoReFT positions: f7+l7 (first 7 and last 7), f5, l3.")]
ReftUntiedOpt = Annotated[bool, typer.Option("--loreft-untied", help="Separate interventions for prefix and suffix.")]
Ia3Opt = Annotated[
    str | None, typer.Option(help="IA3 targets (a comma list as --targets); default: peft's for the model.")
]


def parse_choice(text: str, choices: type[StrEnum], option: str) -> Any:
    """An enum member by value; one line listing the valid values otherwise."""
    for choice in choices:
        if choice.value == text.strip().lower():
            return choice
    raise EstimatorError(f"unknown {option} {text!r}; use one of: {', '.join(c.value for c in choices)}")


@app.callback()
def query(
    ctx: typer.Context,
    model: ModelOpt = None,
    config: ConfigOpt = None,
    tokens: TokensOpt = "100k",
    rank: RankOpt = 32,
    targets: TargetsOpt = "all-linear",
    methods: MethodsOpt = "all",
    adapter_dtype: AdapterDtypeOpt = "bf16",
    kv_dtype: KvDtypeOpt = "bf16",
    kv_group_size: GroupOpt = 64,
    kv_zero_point: ZeroOpt = True,
    weights_dtype: WeightsDtypeOpt = "bf16",
    pretraining_tokens: PretrainingOpt = None,
    experts: ExpertsOpt = "per-expert",
    mla_cache: MlaOpt = "latent",
    window_cache: WindowOpt = "w",
    virtual_tokens: VirtualOpt = 20,
    loreft_rank: ReftRankOpt = 8,
    loreft_layers: ReftLayersOpt = "all",
    loreft_positions: ReftPositionsOpt = "f7+l7",
    loreft_untied: ReftUntiedOpt = False,
    ia3_targets: Ia3Opt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    allow_beyond_full_rank: BeyondOpt = False,
) -> None:
    """Compare the KV cache, adapters, full fine-tuning and pretraining for one model and token count."""
    if ctx.invoked_subcommand is not None:
        return
    from estimator.compare import check_rank, estimate
    from estimator.kv import KVFormat, MlaCache, WindowCache
    from estimator.layout import ExpertLayout
    from estimator.methods import LoReFT, Settings, parse_layers, parse_methods, parse_positions
    from estimator.units import KV_DTYPES, parse_dtype, parse_tokens

    spec = spec_of(model, config)
    if as_json and as_csv:
        raise EstimatorError("--json and --csv exclude each other; pick one")
    n_tokens = parse_tokens(tokens)
    check_rank(rank)
    for value, option in ((loreft_rank, "--loreft-rank"), (virtual_tokens, "--virtual-tokens")):
        if value < 1:
            raise EstimatorError(f"{option} {value} must be at least 1; give a positive integer")
    if kv_group_size < 0:
        raise EstimatorError(f"--kv-group-size {kv_group_size} must be positive, or 0 for one scale per tensor")
    adapter = adapter_dtype_of(adapter_dtype)
    kv = KVFormat(
        parse_dtype(kv_dtype, "KV dtype", KV_DTYPES),
        kv_group_size or None,
        kv_zero_point,
        parse_choice(mla_cache, MlaCache, "--mla-cache"),
        parse_choice(window_cache, WindowCache, "--window-cache"),
    )
    first, last = parse_positions(loreft_positions)
    settings = Settings(
        rank,
        targets,
        parse_choice(experts, ExpertLayout, "--experts"),
        virtual_tokens,
        LoReFT(loreft_rank, parse_layers(loreft_layers, spec), first, last, not loreft_untied),
        ia3_targets,
    )
    est = estimate(
        spec,
        n_tokens,
        rank,
        targets,
        kv_dtype=kv,
        adapter_dtype=adapter,
        weights_dtype=parse_dtype(weights_dtype, "weights dtype"),
        pretraining_tokens=parse_tokens(pretraining_tokens) if pretraining_tokens is not None else None,
        methods=parse_methods(methods),
        settings=settings,
    )
    if est.beyond_full_rank:
        full = est.targets.smallest_full_rank
        names = ", ".join(est.targets.narrowest())
        message = f"rank {rank:,} exceeds the smallest targeted dimension ({names}: {full:,}), LoRA beyond full rank"
        if not allow_beyond_full_rank:
            raise EstimatorError(
                f"{message}; use --rank {full} or less, narrow --targets, or pass --allow-beyond-full-rank"
            )
        typer.echo(f"warning: {message}", err=True)
    if as_json:
        _print_json(est)
    elif as_csv:
        _print_csv(est)
    else:
        _print_table(est)


def adapter_dtype_of(text: str) -> Any:
    """The adapter's storage dtype: one of :data:`ADAPTER_DTYPES`."""
    from estimator.units import parse_dtype

    adapter = parse_dtype(text, "adapter dtype")
    if adapter.value not in ADAPTER_DTYPES:
        raise EstimatorError(f"adapter dtype {text!r} is not offered; use one of: {', '.join(ADAPTER_DTYPES)}")
    return adapter


def spec_of(model: str | None, config: Path | None) -> Any:
    from estimator.specs import ModelSpec, load_spec

    if model is not None and config is not None:
        raise EstimatorError("give either --model or --config, not both")
    if model is not None:
        return load_spec(model)
    if config is not None:
        return ModelSpec.from_hf_config(config)
    raise EstimatorError("no model given; pass --model NAME (see `estimate models`) or --config path/to/config.json")


def _print_json(est: Any) -> None:
    from estimator.report import assumptions

    data = est.to_dict()
    data["assumptions"] = assumptions(est)
    typer.echo(json.dumps(data, indent=2))


def _print_csv(est: Any) -> None:
    from estimator.report import csv_rows

    csv.writer(sys.stdout, lineterminator="\n").writerows(csv_rows(est))


def _print_table(est: Any) -> None:
    from estimator.report import assumptions, crossover_line, estimate_table, model_line, parity_line
    from estimator.units import format_tokens_short

    say(model_line(est))
    say(f"Learning {est.tokens:,} tokens ({format_tokens_short(est.tokens)}) of new text: bytes each way of storing it")
    typer.echo("")
    typer.echo(estimate_table(est))
    typer.echo("")
    say(crossover_line(est))
    say(parity_line(est))
    typer.echo("")
    typer.echo("Assumptions:")
    for line in assumptions(est):
        say(line, bullet="- ")


def say(text: str, bullet: str = "") -> None:
    """Print a paragraph: wrapped to a terminal's width, one unbroken line when piped."""
    if sys.stdout.isatty():
        import shutil
        import textwrap

        width = shutil.get_terminal_size().columns
        text = textwrap.fill(text, width=width, initial_indent=bullet, subsequent_indent=" " * len(bullet))
        typer.echo(text)
    else:
        typer.echo(bullet + text)


@app.command("models")
def models(as_json: JsonOpt = False) -> None:
    """List the model zoo: name, parameters, KV bytes per token (bf16), source."""
    from estimator.architecture import active_params, total_params
    from estimator.kv import kv_bytes_per_token
    from estimator.report import format_table
    from estimator.specs import load_all_specs
    from estimator.units import DType, format_tokens_short

    specs = load_all_specs()
    if as_json:
        records = [
            {
                "name": s.name,
                "display_name": s.display_name,
                "params": total_params(s),
                "active_params": active_params(s),
                "kv_bytes_per_token_bf16": kv_bytes_per_token(s, DType.bf16),
                "num_hidden_layers": s.num_hidden_layers,
                "num_attention_heads": s.num_attention_heads,
                "num_key_value_heads": s.num_key_value_heads,
                "head_dim": s.head_dim,
                "sliding_window_tokens": s.sliding_window,
                "max_position_embeddings_tokens": s.max_position_embeddings,
                "pretraining_tokens": s.pretraining_tokens,
                "source": s.source,
            }
            for s in specs
        ]
        typer.echo(json.dumps(records, indent=2))
        return
    headers = ["name", "model", "parameters", "active (MoE)", "KV bytes/token (bf16)", "window", "layers", "heads q/kv"]
    headers += ["context", "pretrained on", "source"]
    body = [
        [
            s.name,
            s.display_name,
            f"{total_params(s):,}",
            f"{active_params(s):,}" if s.is_moe else "—",
            f"{kv_bytes_per_token(s, DType.bf16):,}",
            "—" if s.sliding_window is None else f"{s.sliding_window:,}",
            str(s.num_hidden_layers),
            f"{s.num_attention_heads}/{s.num_key_value_heads}",
            f"{s.max_position_embeddings:,}",
            "—" if s.pretraining_tokens is None else format_tokens_short(s.pretraining_tokens),
            s.source,
        ]
        for s in specs
    ]
    typer.echo(format_table(headers, body, right={2, 3, 4, 5, 6, 7, 8, 9}))


AllOpt = Annotated[bool, typer.Option("--all", help="Validate every zoo model.")]


@app.command("validate")
def validate_command(
    model: ModelOpt = None,
    config: ConfigOpt = None,
    all_models: AllOpt = False,
    rank: RankOpt = 32,
    targets: TargetsOpt = "all-linear",
    kv_dtype: Annotated[str, typer.Option(help="KV cache dtype to measure: fp32, bf16, fp16.")] = "bf16",
    adapter_dtype: AdapterDtypeOpt = "bf16",
    weights_dtype: WeightsDtypeOpt = "bf16",
    as_json: JsonOpt = False,
) -> None:
    """Measure with transformers and peft what the formulas predict (needs the validate extra)."""
    from estimator.compare import check_rank
    from estimator.specs import load_all_specs
    from estimator.units import parse_dtype
    from estimator.validate import require_extra

    if all_models and (model is not None or config is not None):
        raise EstimatorError("give --all or a model (--model/--config), not both")
    specs = load_all_specs() if all_models else [spec_of(model, config)]
    check_rank(rank)
    kv = parse_dtype(kv_dtype, "KV dtype")
    adapter = parse_dtype(adapter_dtype, "adapter dtype")
    weights = parse_dtype(weights_dtype, "weights dtype")
    require_extra()
    import resource

    from rich.console import Console
    from rich.progress import track

    from estimator.validate.checks import validate

    def run(spec: Any) -> Any:
        return validate(spec, rank=rank, targets=targets, kv_dtype=kv, adapter_dtype=adapter, weights_dtype=weights)

    progress = Console(stderr=True)
    looped = track(specs, description="validating", transient=True, console=progress) if all_models else specs
    results = [run(spec) for spec in looped]
    peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    if as_json:
        typer.echo(json.dumps(_validation_json(results, peak_bytes), indent=2))
        if not all(r.ok for r in results):
            raise typer.Exit(1)
        return
    for result in results:
        _print_validation(result)
    if len(results) > 1:
        failed = [r.spec.name for r in results if not r.ok]
        say(
            f"{len(results)} models, {sum(len(r.checks) for r in results)} checks: "
            + ("all agree." if not failed else f"disagreements in {', '.join(failed)}.")
        )
    from estimator.units import format_bytes

    total = sum(r.seconds for r in results)
    say(results[0].versions.line())
    say(f"Validated in {total:.1f} s; peak memory of this process {format_bytes(peak_bytes, iec=True)} (RSS).")
    if not all(r.ok for r in results):
        raise typer.Exit(1)


MARKS = {"ok": "✔", "differs": "✗", "explained": "✔*"}


def _validation_json(results: list[Any], peak_bytes: int) -> dict[str, Any]:
    """``validate --json``: the versions measured with, and every check of every model."""
    versions = results[0].versions
    return {
        "versions": versions.installed,
        "tested_versions": versions.tested,
        "outside_tested_versions": list(versions.outside),
        "versions_note": versions.line(),
        "ok": all(r.ok for r in results),
        "seconds": sum(r.seconds for r in results),
        "peak_rss_bytes": peak_bytes,
        "models": [
            {
                "name": r.spec.name,
                "display_name": r.spec.display_name,
                "ok": r.ok,
                "seconds": r.seconds,
                "checks": [
                    {
                        "quantity": c.quantity,
                        "estimate": c.estimate,
                        "measured": c.measured,
                        "status": c.status,
                        "note": c.note,
                    }
                    for c in r.checks
                ],
                "method": list(r.method),
            }
            for r in results
        ],
    }


def _print_validation(result: Any) -> None:
    from estimator.report import format_table
    from estimator.units import format_number

    def show(value: object) -> str:
        return format_number(value) if isinstance(value, int | float) else str(value)

    say(f"{result.spec.display_name} ({result.spec.name}): estimate against transformers and peft")
    body = [[c.quantity, show(c.estimate), show(c.measured), c.difference, MARKS[c.status]] for c in result.checks]
    typer.echo(format_table(["quantity", "estimate", "measured", "difference", ""], body, right={1, 2, 3}))
    notes = [c for c in result.checks if c.note]
    for check in notes:
        say(f"{MARKS[check.status]} {check.quantity}: {check.note}", bullet="- ")
    say("How it was measured:")
    for line in result.method:
        say(line, bullet="- ")
    typer.echo("")


def _one_line(text: str) -> str:
    return " ".join(text.split())


# Subcommands defined in other modules, imported (and so registered on `app`) only when the command
# line names them or asks for help: a plain query does not pay for their options.
LAZY_COMMANDS = {
    "figures": "estimator.cli_figures",
    "plot": "estimator.cli_figures",
    "sweep": "estimator.cli_figures",
    "capacity": "estimator.cli_beyond",
    "breakeven": "estimator.cli_beyond",
    "constants": "estimator.cli_beyond",
}


def register_commands(args: list[str]) -> None:
    """Import the modules of the subcommands ``args`` may run (all of them for help or no arguments)."""
    import importlib

    everything = not args or any(a in ("--help", "-h") for a in args)
    for name, module in LAZY_COMMANDS.items():
        if everything or name in args:
            importlib.import_module(module)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; turn every input error into one line and exit status 2."""
    args = sys.argv[1:] if argv is None else argv
    register_commands(args)
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="estimate", standalone_mode=False)
    except EstimatorError as exc:
        typer.echo(f"error: {exc}", err=True)
        return EXIT_BAD_INPUT
    except UsageError as exc:
        typer.echo(f"error: {_one_line(exc.format_message())} (see `estimate --help`)", err=True)
        return EXIT_BAD_INPUT
    except ClickException as exc:
        typer.echo(f"error: {_one_line(exc.format_message())}", err=True)
        return int(exc.exit_code) or 1
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 1
    except BrokenPipeError:  # e.g. `estimate ... | head`: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # an output file or folder that cannot be written
        where = exc.filename or "the output"
        typer.echo(f"error: cannot write {where}: {exc.strerror or exc}; check the path and its permissions", err=True)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":  # `python -m estimator.cli`: run the module the subcommands registered on
    from estimator.cli import main as registered_main

    sys.exit(registered_main())

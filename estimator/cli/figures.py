"""``estimate figures``, ``estimate plot`` and ``estimate sweep``: thin wrappers over
:mod:`estimator.sweep` and :mod:`estimator.plots` (numpy and matplotlib are imported only here, inside
the commands, never by a plain query); the sweep's answer is a :class:`~estimator.present.sweep.SweepReport`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from estimator.cli.app import app
from estimator.cli.options import query_command
from estimator.cli.output import CsvOpt, JsonOpt, MarkdownOpt, chosen_format, emit, write
from estimator.errors import EstimatorError
from estimator.present.report import Format
from estimator.query.options import CACHE_OPTIONS, MODEL_OPTIONS

FIGURE_METHODS = {"methods": "kv,lora,pretraining"}  # the rows the figures draw
# The query options the figures and sweeps read: the model, its cache, the LoRA (rank, targets, experts, dtypes)
# and the pretraining row. They draw no DoRA, IA3, LoReFT, prefix or prompt row, so those options are refused.
FIGURE_OPTIONS = (*MODEL_OPTIONS, *CACHE_OPTIONS, "rank", "targets", "experts", "adapter_dtype", "weights_dtype",
                  "pretraining_tokens", "kv_method")  # fmt: skip


class Kind(StrEnum):
    tokens = "tokens"
    rank = "rank"
    models = "models"
    heatmap = "heatmap"
    capacity = "capacity"
    breakeven = "breakeven"
    architectures = "architectures"
    memory = "memory"
    frontier = "frontier"
    tuners = "tuners"


FormatOpt = Annotated[str, typer.Option("--format", help="Comma list of file formats: png, svg, pdf.")]
# --format of `estimate sweep`: the answer's format, as for every query (the figures' --format is their files')
SweepFormatOpt = Annotated[
    Format | None,
    typer.Option("--format", help="Output: table (for a person), json (every key names its unit), csv, markdown."),
]
NoTitleOpt = Annotated[bool, typer.Option("--no-title", help="Leave off the title (a paper sets its own).")]
NoCaptionOpt = Annotated[bool, typer.Option("--no-caption", help="Leave off the caption line of assumptions.")]


def _formats(text: str) -> list[str]:
    from estimator.plots import FORMATS

    chosen = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        names = ", ".join(repr(f) for f in unknown) or repr(text)
        raise EstimatorError(f"unknown figure format {names}; use png, svg or pdf")
    return list(dict.fromkeys(chosen))


@app.command("figures")
@query_command(defaults=FIGURE_METHODS, only=FIGURE_OPTIONS)
def figures(
    out: Annotated[Path, typer.Option(help="Folder to write into.")] = Path("figures"),
    formats: FormatOpt = "png,svg",
    no_title: NoTitleOpt = False,
    no_caption: NoCaptionOpt = False,
    *,
    query: Any,
) -> None:
    """Regenerate every figure (fixed file names, no timestamps) and figures/manifest.json."""
    from estimator.compare import evaluate

    chosen = _formats(formats)
    est = evaluate(query)
    from estimator.plots import draw_figures

    paths, skipped = draw_figures(est, out, chosen, title=not no_title, caption=not no_caption)
    for path in paths:
        typer.echo(str(path))
    for name, why in skipped.items():  # the rest were written; the manifest names these too
        typer.echo(f"skipped {name}: {why}", err=True)


KindArg = Annotated[
    Kind,
    typer.Argument(help="tokens, rank, models, heatmap, capacity, breakeven, architectures, memory, frontier, tuners."),
]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="File to write; its suffix sets the format.")]
MAX_CURVES = 8  # ranks drawn in one figure: each needs its own colour and dash
RanksOpt = Annotated[
    str, typer.Option(help="LoRA ranks drawn by `plot tokens` and `plot capacity` (comma list), besides --rank.")
]


@app.command("plot")
@query_command(defaults=FIGURE_METHODS, only=FIGURE_OPTIONS)
def plot(
    kind: KindArg,
    out: OutOpt = None,
    ranks: RanksOpt = "8,32,128",
    no_title: NoTitleOpt = False,
    no_caption: NoCaptionOpt = False,
    *,
    query: Any,
) -> None:
    """Draw one figure for your own query and write it (default: <figure name>.png here)."""
    from estimator.compare import evaluate
    from estimator.units import MAX_RANK, parse_grid

    drawn_ranks = parse_grid(ranks, "ranks", MAX_RANK)
    if len(drawn_ranks) > MAX_CURVES:
        raise EstimatorError(
            f"{len(drawn_ranks):,} ranks are too many curves for one figure; give at most {MAX_CURVES}"
        )
    est = evaluate(query)
    from estimator.plots import FIGURES, KINDS, save
    from estimator.plots.tokens import bytes_per_token_vs_tokens

    name = KINDS[kind.value]
    path = out if out is not None else Path(f"{name}.png")
    (fmt,) = _formats(path.suffix or "png")
    if kind is Kind.tokens:
        fig = bytes_per_token_vs_tokens(est, drawn_ranks)
    elif kind is Kind.capacity:
        from estimator.plots.beyond import capacity_vs_tokens

        fig = capacity_vs_tokens(est, drawn_ranks)
    else:
        fig = FIGURES[name](est)
    from estimator.plots.style import plain

    (written,) = save(plain(fig, title=not no_title, caption=not no_caption), path.with_suffix(""), [fmt])
    typer.echo(str(written))


GridOpt = Annotated[
    str, typer.Option("--tokens", "-t", help="Token counts: 1k:1B:log20 (log spaced), 1k:10k:lin10, 1k,10k,100k.")
]
RankGridOpt = Annotated[
    str, typer.Option("--ranks", "--rank", "-r", help="LoRA ranks: 1,8,32,128, 1:8192:x2 (doubling) or 1:1024:log11.")
]
SweepOutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Write to a .csv or .json file.")]
TABLE_ROWS = 200  # the printed table's limit; larger sweeps go to --csv, --json or --out


@app.command("sweep")
@query_command(defaults=FIGURE_METHODS, only=FIGURE_OPTIONS)
def sweep_command(
    tokens: GridOpt = "1k:1B:log7",
    rank: RankGridOpt = "8,32,128",
    output: SweepFormatOpt = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    markdown: MarkdownOpt = False,
    out: SweepOutOpt = None,
    *,
    query: Any,
) -> None:
    """KV cache against LoRA over a grid of token counts × ranks: one row per point."""
    from estimator.compare import evaluate
    from estimator.present.sweep import SweepReport
    from estimator.units import MAX_RANK, parse_grid

    fmt = chosen_format(output, as_json, as_csv, markdown)
    if out is not None and (fmt is not Format.table or output is not None):
        raise EstimatorError(f"--out and --format {fmt.value} (or its alias) exclude each other: the file's suffix, "
                             ".csv or .json, names its format; give one")  # fmt: skip
    if out is not None and out.suffix.lower() not in (".csv", ".json"):
        raise EstimatorError(f"cannot tell the format of {out}; name it .csv or .json")
    token_grid, rank_grid = parse_grid(tokens, "tokens"), parse_grid(rank, "ranks", MAX_RANK)
    est = evaluate(query.with_(tokens=1, rank=min(rank_grid)))
    from estimator.sweep import sweep

    columns = sweep(est, token_grid, rank_grid).columns()
    printed = out is None and fmt in (Format.table, Format.markdown)
    if query.kv_methods:  # --kv-method: each method's cache and the LoRA against it, per point
        if printed:
            raise EstimatorError("--kv-method adds columns to the sweep's rows; add --csv, --json or --out sweep.csv")
        from estimator.frontier.columns import frontier_columns

        columns |= frontier_columns(query, columns["tokens"], columns["lora_bytes"])
    rows, report = len(columns["tokens"]), SweepReport(est, columns)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8", newline="") as stream:
            write(report, Format(out.suffix.lower().lstrip(".")), stream)
        typer.echo(f"{rows:,} rows written to {out}", err=True)
        return
    if printed and rows > TABLE_ROWS:
        raise EstimatorError(f"{rows:,} rows are too many to print; add --csv, --json or --out sweep.csv")
    emit(report, fmt)

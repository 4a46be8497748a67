"""``estimate models``: the zoo, one line per model, its cache rate at a stated number of tokens; the answer is
a :class:`~estimator.present.zoo.ZooReport`, printed by :func:`~estimator.cli.output.emit`."""

from __future__ import annotations

from typing import Annotated

import typer

from estimator.cli.app import app
from estimator.cli.output import emit, with_format
from estimator.errors import EstimatorError
from estimator.present.report import Format

ModelsTokensOpt = Annotated[
    str, typer.Option("--tokens", "-t", help="Tokens of text at which the cache rate is given (window, state).")
]
SortOpt = Annotated[str, typer.Option("--sort", help="Order: name, params or kv (cache bytes per token at T).")]


@app.command("models")
@with_format
def models(tokens: ModelsTokensOpt = "100k", sort: SortOpt = "name", *, fmt: Format) -> None:
    """List the model zoo: parameters, the KV cache's bytes per token of text at T tokens (bf16), source.

    The rate is given at a stated T because windows and fixed states make it depend on T (Gemma 3 27B:
    507,904 bytes per cached token while no window is full, 82,356 per token at 1M)."""
    from estimator.present.zoo import SORT_KEYS, ZooReport, model_record, sort_key
    from estimator.units import parse_tokens
    from estimator.zoo import load_all_specs

    if sort not in SORT_KEYS:
        raise EstimatorError(f"--sort {sort!r} is not a column to sort by; give one of {', '.join(SORT_KEYS)}")
    t = parse_tokens(tokens)
    emit(ZooReport(sorted((model_record(s, t) for s in load_all_specs()), key=sort_key(sort)), t), fmt)

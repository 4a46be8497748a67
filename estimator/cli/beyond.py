"""``estimate capacity`` and ``estimate constants``: beyond bytes, thin wrappers over
:mod:`estimator.capacity` and :mod:`estimator.constants` whose answers are reports
(:mod:`estimator.present.capacity`) printed by :func:`~estimator.cli.output.emit` (``estimate breakeven`` is in
:mod:`estimator.cli.breakeven`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from estimator.capacity import Exposures
from estimator.cli.app import app
from estimator.cli.options import query_command
from estimator.cli.output import emit, with_format
from estimator.errors import EstimatorError
from estimator.present.report import Format

ExposuresOpt = Annotated[
    Exposures, typer.Option(help="Times each fact is seen in training: 1000 (2 bits/param) or 100 (1 bit/param).")
]
BitsPerParamOpt = Annotated[
    float | None, typer.Option(help="Knowledge bits per parameter, overriding --exposures (0.7 for int4 weights).")
]
TextBitsOpt = Annotated[
    float | None, typer.Option(help="Information per token of text in bits (default 1.69 nats = 2.44 bits).")
]
TextNatsOpt = Annotated[float | None, typer.Option(help="The same in nats per token (Chinchilla's E = 1.69).")]
TextFileOpt = Annotated[
    Path | None,
    typer.Option("--text", help="The text itself (UTF-8, ≤ 16 MiB): its tokens, and compressors' bound on its bits."),
]
TextTokensOpt = Annotated[
    int | None, typer.Option(help="Tokens of --text by your tokenizer (default: estimated as bytes / 4).")
]


def _rate(value: float | None, option: str, per_param: bool = False) -> None:
    """A finite rate within the documented range (:mod:`estimator.capacity`), named by its option."""
    from estimator.capacity import BITS_PER_PARAM_RANGE, BITS_PER_TOKEN_RANGE, check_rate

    if value is not None:
        bounds = BITS_PER_PARAM_RANGE if per_param else BITS_PER_TOKEN_RANGE
        check_rate(value, option, bounds, "2" if per_param else "1.69")


@app.command("capacity")
@query_command()
@with_format
def capacity_command(
    ctx: typer.Context,
    exposures: ExposuresOpt = Exposures.many,
    bits_per_param: BitsPerParamOpt = None,
    text_bits_per_token: TextBitsOpt = None,
    text_nats_per_token: TextNatsOpt = None,
    text: TextFileOpt = None,
    text_tokens: TextTokensOpt = None,
    *,
    fmt: Format,
    query: Any,
) -> None:
    """Knowledge capacity of each trained store (bits) against the information in the text, as a range."""
    from typer._click.core import ParameterSource

    from estimator.capacity import capacity
    from estimator.compare import evaluate
    from estimator.constants import knowledge_bits_per_param, nats_to_bits
    from estimator.information import information, read_sample
    from estimator.present.capacity import CapacityReport

    _rate(bits_per_param, "--bits-per-param", per_param=True)
    _rate(text_bits_per_token, "--text-bits-per-token")
    _rate(text_nats_per_token, "--text-nats-per-token")
    if text_bits_per_token is not None and text_nats_per_token is not None:
        raise EstimatorError("--text-bits-per-token and --text-nats-per-token exclude each other; give one")
    sample = None
    if text is not None:
        if ctx.get_parameter_source("tokens") in (ParameterSource.COMMANDLINE, ParameterSource.DEFAULT_MAP):
            raise EstimatorError("--text sets the token count; drop --tokens, or give --text-tokens for your count")
        sample = read_sample(text, text_tokens)
        query = query.with_(tokens=sample.tokens)
    elif text_tokens is not None:
        raise EstimatorError("--text-tokens counts the tokens of --text; give --text FILE, or use --tokens")
    est = evaluate(query)
    per_param = bits_per_param if bits_per_param is not None else knowledge_bits_per_param(int(exposures.value))
    given = (
        text_bits_per_token
        if text_bits_per_token is not None
        else nats_to_bits(text_nats_per_token)
        if text_nats_per_token is not None
        else None
    )
    rate = information(est.spec.vocab_size, given, sample)
    result = capacity(est, per_param, rate.point_bits_per_token, rate, sample)
    emit(CapacityReport(result, exposures, given=bits_per_param is not None), fmt)


@app.command("constants")
@with_format
def constants_command(*, fmt: Format) -> None:
    """The empirical constants behind capacity and information, with sources and the option to override each."""
    from estimator.present.capacity import ConstantsReport

    emit(ConstantsReport(), fmt)

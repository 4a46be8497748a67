"""``estimate capacity`` and ``estimate constants``: beyond bytes, thin wrappers over
:mod:`estimator.capacity` and :mod:`estimator.constants` (``estimate breakeven`` is in
:mod:`estimator.cli.breakeven`).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from estimator.cli.app import app, say
from estimator.cli.options import JsonOpt, query_command
from estimator.errors import EstimatorError


class Exposures(StrEnum):
    many = "1000"
    few = "100"


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


def _rate(value: float | None, option: str, per_param: bool = False) -> None:
    """A finite rate within the documented range (:mod:`estimator.capacity`), named by its option."""
    from estimator.capacity import BITS_PER_PARAM_RANGE, BITS_PER_TOKEN_RANGE, check_rate

    if value is not None:
        bounds = BITS_PER_PARAM_RANGE if per_param else BITS_PER_TOKEN_RANGE
        check_rate(value, option, bounds, "2" if per_param else "1.69")


@app.command("capacity")
@query_command()
def capacity_command(
    exposures: ExposuresOpt = Exposures.many,
    bits_per_param: BitsPerParamOpt = None,
    text_bits_per_token: TextBitsOpt = None,
    text_nats_per_token: TextNatsOpt = None,
    as_json: JsonOpt = False,
    *,
    query: Any,
) -> None:
    """Knowledge capacity of each trained store (bits) against the information in the text."""
    from estimator.capacity import DEFAULT_TEXT_BITS_PER_TOKEN, capacity
    from estimator.compare import evaluate
    from estimator.constants import knowledge_bits_per_param, nats_to_bits

    _rate(bits_per_param, "--bits-per-param", per_param=True)
    _rate(text_bits_per_token, "--text-bits-per-token")
    _rate(text_nats_per_token, "--text-nats-per-token")
    if text_bits_per_token is not None and text_nats_per_token is not None:
        raise EstimatorError("--text-bits-per-token and --text-nats-per-token exclude each other; give one")
    est = evaluate(query)
    per_param = bits_per_param if bits_per_param is not None else knowledge_bits_per_param(int(exposures.value))
    per_token = (
        text_bits_per_token
        if text_bits_per_token is not None
        else nats_to_bits(text_nats_per_token)
        if text_nats_per_token is not None
        else DEFAULT_TEXT_BITS_PER_TOKEN
    )
    result = capacity(est, per_param, per_token)
    words = capacity_assumptions(result, exposures, bits_per_param is not None)
    if as_json:
        typer.echo(json.dumps({**result.to_dict(), "assumptions": words}, indent=2))
        return
    _print_capacity(result, words)


def capacity_assumptions(result: Any, exposures: Exposures, given: bool) -> list[str]:
    from estimator.capacity import DEFAULT_TEXT_BITS_PER_TOKEN
    from estimator.constants import KNOWLEDGE_BITS_PER_PARAM, PHYSICS_3_3, TEXT_NATS_PER_TOKEN

    source = (
        "given by --bits-per-param" if given else f"{PHYSICS_3_3}, for facts seen about {int(exposures.value):,} times"
    )
    words = [
        f"Knowledge capacity: {result.bits_per_param:g} bits per trained parameter ({source}). The paper measured "
        "whole models trained from scratch on synthetic biographies; applying it to adapter parameters is an "
        f"assumption, an upper bound on what they can hold ({KNOWLEDGE_BITS_PER_PARAM.value:g} bits needs ~1,000 "
        "exposures, 1 bit at 100, 0.7 for int4 weights).",
    ]
    if result.text_bits_per_token == DEFAULT_TEXT_BITS_PER_TOKEN:
        words.append(
            f"Information in the text: {result.text_bits_per_token:.3f} bits per token = {TEXT_NATS_PER_TOKEN.value} "
            f"nats / ln 2, the irreducible loss E of {TEXT_NATS_PER_TOKEN.source}: the entropy a perfect model "
            "would still face. New, surprising text carries more; set --text-bits-per-token."
        )
    else:
        words.append(f"Information in the text: {result.text_bits_per_token:g} bits per token (given).")
    words.append("Capacity is information the store could hold; what training actually puts there is not modelled.")
    return words


def _print_capacity(result: Any, words: list[str]) -> None:
    from estimator.present.tables import format_ratio, format_table, method_label
    from estimator.units import format_bytes, format_number, format_tokens_short

    est = result.est
    say(
        f"{est.spec.display_name} ({est.spec.name}): knowledge capacity against the information in "
        f"{est.tokens:,} tokens of text"
    )
    say(
        f"Information: {est.tokens:,} tokens × {result.text_bits_per_token:.3f} bits = "
        f"{result.information_bits:,.0f} bits ({format_bytes(result.information_bits / 8)})"
    )
    typer.echo("")
    headers = ["store", "parameters", "capacity (bits)", "capacity (SI)", "÷ information", "full at (tokens)"]
    body = [
        [
            method_label(est, r.method),
            f"{r.params:,}",
            f"{r.capacity_bits:,.0f}",
            format_bytes(r.capacity_bits / 8),
            format_ratio(r.headroom),
            f"{r.fill_tokens:,}",
        ]
        for r in result.rows
    ]
    typer.echo(format_table(headers, body, right={1, 2, 3, 4, 5}))
    typer.echo("")
    say(
        f"KV cache: {format_number(result.kv_stored_bits_per_token)} stored bits per token for "
        f"{result.text_bits_per_token:.3f} bits of information, {result.kv_redundancy:,.0f} stored bits per bit."
    )
    if result.pretraining_capacity_bits_per_token is not None:
        say(
            f"Pretraining: {result.pretraining_weight_bits_per_token:.3g} bits of {est.weights_dtype.value} weights "
            f"({est.pretraining_bytes_per_token:.3g} bytes) per pretraining token; knowledge capacity "
            f"{result.pretraining_capacity_bits_per_token:.3g} bits per pretraining token ({result.bits_per_param:g} "
            f"bits per parameter over {format_tokens_short(est.pretraining_tokens)} tokens)."
        )
    typer.echo("")
    typer.echo("Assumptions:")
    for line in words:
        say(line, bullet="- ")


@app.command("constants")
def constants_command(as_json: JsonOpt = False) -> None:
    """The empirical constants behind capacity and information, with sources and the option to override each."""
    from dataclasses import asdict

    from estimator.constants import CONSTANTS
    from estimator.present.tables import format_table

    if as_json:
        typer.echo(json.dumps([asdict(c) for c in CONSTANTS], indent=2))
        return
    body = [[c.name, f"{c.value:g}", c.unit, c.option] for c in CONSTANTS]
    typer.echo(format_table(["constant", "value", "unit", "override"], body, right={1}))
    typer.echo("")
    for c in CONSTANTS:
        say(f"{c.name}: {c.conditions}. Source: {c.source}.", bullet="- ")

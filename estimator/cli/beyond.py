"""``estimate capacity`` and ``estimate constants``: beyond bytes, thin wrappers over
:mod:`estimator.capacity` and :mod:`estimator.constants` (``estimate breakeven`` is in
:mod:`estimator.cli.breakeven`).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from estimator.cli.app import app, say
from estimator.cli.options import JsonOpt, query_command
from estimator.errors import EstimatorError
from estimator.query.vocabulary import Method


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
def capacity_command(
    ctx: typer.Context,
    exposures: ExposuresOpt = Exposures.many,
    bits_per_param: BitsPerParamOpt = None,
    text_bits_per_token: TextBitsOpt = None,
    text_nats_per_token: TextNatsOpt = None,
    text: TextFileOpt = None,
    text_tokens: TextTokensOpt = None,
    as_json: JsonOpt = False,
    *,
    query: Any,
) -> None:
    """Knowledge capacity of each trained store (bits) against the information in the text, as a range."""
    from typer._click.core import ParameterSource

    from estimator.capacity import capacity
    from estimator.compare import evaluate
    from estimator.constants import knowledge_bits_per_param, nats_to_bits
    from estimator.information import information, read_sample

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
    words = capacity_assumptions(result, exposures, bits_per_param is not None)
    if as_json:
        from estimator import __version__

        typer.echo(json.dumps({"estimator_version": __version__, **result.to_dict(), "assumptions": words}, indent=2))
        return
    _print_capacity(result, words)


def capacity_assumptions(result: Any, exposures: Exposures, given: bool) -> list[str]:
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
    rate = result.information_range
    words.append(
        f"Information in the text: {result.text_bits_per_token:.3f} bits per token ({rate.point_source}); the "
        f"reference points run from {rate.low_bits_per_token:.3f} (Chinchilla's irreducible loss E = "
        f"{TEXT_NATS_PER_TOKEN.value} nats, {TEXT_NATS_PER_TOKEN.source}: the entropy a perfect model of its "
        "training text still faces, in its own tokenizer; typical text, not what this text costs this model, and "
        "no floor: another tokenizer, or a text the model already knows, costs fewer bits) to "
        f"{rate.ceiling_bits_per_token:.3f} ({rate.ceiling_source}, a bound). Give the model's loss on your text "
        "with --text-bits-per-token, and the text with --text."
    )
    words.append(
        "Capacity and information are different quantities: capacity counts bits of facts a model can be made to "
        "state (Allen-Zhu & Li's extractable knowledge), information the entropy of the text's tokens. Their "
        "ratio (÷ information) and the tokens that would fill a store are reference points for scale, not "
        "predictions of what a store keeps."
    )
    if result.sample is not None:
        sample = result.sample
        counted = "by your tokenizer (--text-tokens)" if sample.tokens_counted else "estimated as bytes / 4"
        sizes = ", ".join(f"{name} {size:,}" for name, size in sample.compressed_bytes.items())
        words.append(
            f"Text: {sample.path}, {sample.size_bytes:,} bytes, {sample.tokens:,} tokens {counted}; compressed "
            f"bytes {sizes}: the smallest bounds its information from above."
        )
    full = result.row(Method.full)
    if full is not None:
        words.append(full_finetuning_words(result))
    words.append("Capacity is information the store could hold; what training actually puts there is not modelled.")
    return words


def full_finetuning_words(result: Any) -> str:
    """Why full fine-tuning gets no headroom: its weights are the pretrained ones, already full."""
    est = result.est
    held = result.bits_per_param * est.params
    if result.pretraining_information_bits is None:
        return (
            f"Full fine-tuning writes into the pretrained weights: their {held:,.0f} bits of capacity already hold "
            "what pretraining taught, so new facts displace old ones; no headroom is given for it."
        )
    seen = (
        f"the {result.pretraining_information_bits:,.0f} bits of their {est.pretraining_tokens:,} pretraining tokens "
        f"at {result.text_bits_per_token:.3f} bits each"
    )
    if held < result.pretraining_information_bits:
        return (
            f"Full fine-tuning writes into the pretrained weights, whose {held:,.0f} bits of capacity are below "
            f"{seen}: by these constants they are already full, so new facts displace old ones and no headroom is "
            "given for it (its capacity is a bound shared with all the model knows)."
        )
    return (
        f"Full fine-tuning writes into the pretrained weights, whose {held:,.0f} bits of capacity exceed {seen}; "
        "some may be free, but how much of it pretraining used is unknown, so no headroom is given for it."
    )


def _print_capacity(result: Any, words: list[str]) -> None:
    from estimator.present.tables import format_ratio, format_table, method_label
    from estimator.units import format_bytes, format_number, format_tokens_short

    est, rate = result.est, result.information_range
    say(
        f"{est.spec.display_name} ({est.spec.name}): knowledge capacity against the information in "
        f"{est.tokens:,} tokens of text (reference points: different quantities, see Assumptions)"
    )
    low, point, high = rate.bits(est.tokens)
    say(
        f"Information: {est.tokens:,} tokens × {result.text_bits_per_token:.3f} bits = {point:,.0f} bits "
        f"({format_bytes(point / 8)}); reference points {low:,.0f} to {high:,.0f} bits "
        f"({rate.low_bits_per_token:.3f} to {rate.ceiling_bits_per_token:.3f} bits per token)"
    )
    typer.echo("")
    headers = ["store", "parameters", "capacity (bits)", "capacity (SI)", "÷ information", "÷ at ceiling"]
    headers.append("full at (tokens)")
    body = [
        [
            method_label(est, r.method),
            f"{r.params:,}",
            f"{r.capacity_bits:,.0f}",
            format_bytes(r.capacity_bits / 8),
            "shared" if r.shared else format_ratio(r.headroom),
            "shared" if r.shared else format_ratio(r.headroom_at_ceiling),
            "—" if r.fill_tokens is None else f"{r.fill_tokens:,}",
        ]
        for r in result.rows
    ]
    typer.echo(format_table(headers, body, right={1, 2, 3, 4, 5, 6}))
    typer.echo("")
    if result.row(Method.full) is not None:
        say("shared: full fine-tuning's capacity is the pretrained weights', already in use (see Assumptions).")
    if est.holds_all_tokens:
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

"""The comparison gathered: each model (zoo names and config.json files) at each token count, the models the
query does not apply to left out with why, into the estimates a
:class:`~estimator.present.comparison.ComparisonReport` prints (the CLI's ``compare``, the web's
``/api/compare``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from estimator.errors import EstimatorError
from estimator.query.options import build_query

MAX_COMPARED = 1_000  # models × token counts in one comparison


def _split(text: str, what: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise EstimatorError(f"{what} {text!r} has an empty entry; give a comma list such as llama3-8b,qwen3-8b")
    return items


def compared(
    model: str | None, config: list[Path] | None, tokens: str, options: dict[str, Any]
) -> tuple[list[Any], list[tuple[str, str]]]:
    """The estimates of each model at each token count, and the models left out (with why)."""
    from estimator.compare import evaluate

    configs = list(config or [])
    names = _split(model, "--model") if model is not None else []
    if not names and not configs:
        raise EstimatorError("name the models to compare; give --model llama3-8b,qwen3-8b and/or --config FILE")
    if options["name"] is not None and len(configs) != 1:
        raise EstimatorError("--name names one --config model; drop it, or compare one config")
    from estimator.units import parse_tokens

    counts = list(dict.fromkeys(str(parse_tokens(count)) for count in _split(tokens, "--tokens")))
    if (len(names) + len(configs)) * len(counts) > MAX_COMPARED:
        raise EstimatorError(f"more than {MAX_COMPARED:,} models × token counts; compare fewer")
    models: list[dict[str, Any]] = [{"model": n, "config": None} for n in names]
    models += [{"model": None, "config": c} for c in configs]
    estimates, skipped = [], []
    for chosen in models:
        for count in counts:
            query = applicable_query({**options, **chosen, "tokens": count, "methods": "kv,lora"})
            if isinstance(query, tuple):  # the targets name maps this model does not have: leave it out, say why
                skipped.append(query)
                break
            estimates.append(evaluate(query))
    if not estimates:
        raise EstimatorError("the query applies to none of the models: " + "; ".join(w for _, w in skipped))
    return estimates, skipped


def applicable_query(values: dict[str, Any]) -> Any:
    """The query of ``values``, or (model, why) where only the targets fail for this model (with the default
    all-linear the model is fine): a comparison leaves such a model out rather than stopping."""
    try:
        return build_query(values)
    except EstimatorError as exc:
        try:
            spec = build_query({**values, "targets": "all-linear"}).spec
        except EstimatorError:
            raise exc from None
        return spec.name, str(exc)

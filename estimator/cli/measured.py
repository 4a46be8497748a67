"""The main query for a model no family knows: measured from transformers and peft (:mod:`estimator.validate.unknown`)
and printed through the one output seam (:class:`~estimator.present.measured.MeasuredReport`)."""

from __future__ import annotations

from typing import Any

from estimator.cli.output import emit
from estimator.errors import EstimatorError
from estimator.present.measured import MeasuredReport
from estimator.present.report import Format

DEFAULTS_ONLY = {  # options that need a known family: only their defaults can be measured
    "targets": "all-linear",
    "experts": "per-expert",
    "ia3_targets": None,
    "mla_cache": "latent",
    "window_cache": "w",
}


def measured_query(unknown: Any, options: dict[str, Any], fmt: Format) -> None:
    """Measure and print the rows of the main query for ``unknown`` (an :class:`UnknownFamilyError`)."""
    import importlib.util

    from estimator.query import ADAPTER_DTYPES
    from estimator.query.vocabulary import parse_methods
    from estimator.units import KV_DTYPES, parse_dtype, parse_tokens
    from estimator.validate import EXTRA_PACKAGES, INSTALL_HINT

    if any(importlib.util.find_spec(name) is None for name in EXTRA_PACKAGES):
        raise EstimatorError(f"{unknown}; to measure it from transformers and peft, install the extra: {INSTALL_HINT}")
    for option, default in DEFAULTS_ONLY.items():
        if options.get(option) not in (default, None) and options.get(option) != default:
            flag = "--" + option.replace("_", "-")
            raise EstimatorError(
                f"{flag} needs a family the estimator knows; model_type {unknown.model_type!r} is measured with "
                f"the defaults only: drop {flag}"
            )
    wrapped = [
        key for key in ("text_config", "vision_config", "audio_config") if isinstance(unknown.config.get(key), dict)
    ]
    if options.get("part", "language") != "language" and wrapped:
        raise EstimatorError(
            f"--part all: the parts of a {unknown.model_type} checkpoint ({', '.join(wrapped)}) are not measured "
            "here; use --part language"
        )
    from estimator.hf_config import model_name
    from estimator.validate.bounds import check_bounds
    from estimator.validate.child import measure_in_child
    from estimator.validate.unknown import measured_from

    tokens = parse_tokens(options["tokens"])
    methods = {m.value for m in parse_methods(options["methods"])}
    name, display = model_name(unknown.config, unknown.path, options.get("name"))
    kv_dtype = parse_dtype(options["kv_dtype"], "KV dtype", KV_DTYPES)
    adapter_dtype = parse_dtype(options["adapter_dtype"], "adapter dtype", ADAPTER_DTYPES)
    check_bounds(unknown.config, unknown.path)
    request = {"path": str(unknown.path), "model_type": unknown.model_type, "config": unknown.config,
               "name": display, "tokens": tokens, "rank": options["rank"], "kv_dtype": kv_dtype.value,
               "adapter_dtype": adapter_dtype.value, "virtual_tokens": options["virtual_tokens"]}  # fmt: skip
    result = measured_from(measure_in_child(request))
    rows = [r for r in result.rows if r.method in methods]
    kv = result.row("kv").bytes
    emit(MeasuredReport(result, rows, name, kv), fmt)

"""Machine-readable records (the ``--json`` payloads): every key names its unit; plain numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.kv import mla_forms, windowed

if TYPE_CHECKING:
    from estimator.compare import Crossover, Estimate
    from estimator.query.vocabulary import Method


def estimate_record(est: Estimate) -> dict[str, Any]:
    """The ``--json`` payload of the main query (without the assumptions, which the CLI adds)."""
    spec, q = est.spec, est.query
    pretraining = est.pretraining_bytes_per_token
    holds = est.holds_all_tokens  # else the cache keeps only the last w tokens: no rate per token of the text
    from estimator import __version__
    from estimator.present.frontier import records as frontier_records
    from estimator.present.words import context_warning, headline_line, part_counted

    warning = context_warning(est)
    return {
        "estimator_version": __version__,
        "headline": headline_line(est),
        "warnings": [] if warning is None else [warning],
        "model": {
            "name": spec.name,
            "display_name": spec.display_name,
            "source": spec.source,
            "params": est.params,
            "part": est.query.part,  # --part: "language" (a multimodal checkpoint's language model) or "all"
            "part_counted": part_counted(est.query),
            "active_params": est.active_params,
            "params_breakdown": dict(est.params_breakdown),
            "num_hidden_layers": spec.num_hidden_layers,
            "num_attention_heads": spec.num_attention_heads,
            "num_key_value_heads": spec.num_key_value_heads,
            "head_dim": spec.head_dim,
            "hidden_size": spec.hidden_size,
            "context_window_tokens": est.context_window_tokens,  # null: no window of its own (an SSM)
        },
        "query": {
            "tokens": est.tokens,
            "rank": est.rank,
            "targets": est.targets.label,
            "target_modules": list(est.targets.module_names),
            "target_parameters": list(est.targets.parameter_names),
            "experts": q.experts.value,
            "kv_dtype": q.kv.dtype.value,
            "kv_bits_per_element": q.kv.dtype.bits,
            "kv_group_size_elements": q.kv.group_size if q.kv.quantised else None,
            "kv_zero_point": q.kv.zero_point if q.kv.quantised else None,
            "mla_cache": q.kv.mla.value if mla_forms(spec) else None,
            "window_cache": q.kv.window.value if windowed(spec) else None,
            "adapter_dtype": q.adapter_dtype.value,
            "adapter_bits_per_param": q.adapter_dtype.bits,
            "weights_dtype": q.weights_dtype.value,
            "weights_bits_per_param": q.weights_dtype.bits,
            "pretraining_tokens": est.pretraining_tokens,
            "virtual_tokens": q.virtual_tokens,
        },
        "tokens_held": None if est.holds_text_as == "state" else est.tokens_held,  # null: a state, no tokens
        "holds_all_tokens": holds,
        "holds_text_as": est.holds_text_as,
        "beyond_context_window": est.beyond_context_window,
        "kv_cache": {
            "bytes_per_token": est.kv_bytes_per_token if holds else None,
            "bytes_per_token_unbounded": est.kv_bytes_per_token_unbounded,
            "bytes": est.kv_cache_bytes,
            "growing_bytes": est.kv_growing_bytes,
            "state_bytes": est.kv_state_bytes,
            "state_bytes_per_token": est.kv_state_bytes / est.tokens,
        },
        "lora": {
            "params": est.lora_params,
            "bytes": est.lora_bytes,
            "bytes_per_token": est.lora_bytes_per_token,
            "fraction_of_model_params": est.lora_fraction_of_model_params,
            "smallest_full_rank": est.targets.smallest_full_rank,
        },
        "pretraining": {
            "weights_bytes": est.weights_bytes,
            "tokens": est.pretraining_tokens,
            "bytes_per_token": pretraining,
        },
        "methods": [
            {
                "method": r.method.value,
                "params": r.params,
                "bytes": r.bytes,
                "bytes_per_token": r.bytes_per_token if holds or r.params is not None else None,
                "kv_to_this_bytes_ratio": r.kv_to_this_bytes_ratio if holds else None,
                "crossover_tokens": r.crossover_tokens,
                "crossover_reason": None if r.crossover is None else r.crossover.reason.value,
                **three_sizes(est, r.method),
            }
            for r in est.rows
        ],
        "kv_methods": frontier_records(est),  # --kv-method: the shrunk caches (estimator.present.frontier)
        "kv_to_lora_bytes_ratio": est.kv_to_lora_bytes_ratio if holds else None,
        "kv_to_pretraining_bytes_per_token_ratio": None
        if pretraining is None or not holds
        else est.kv_bytes_per_token / pretraining,
        "crossover_tokens": est.crossover_tokens,
        "crossover": crossover_record(est.crossover),
        "parity_rank": est.parity_rank if holds else None,
        "parity_lora_params": est.parity_lora_params if holds else None,
        "parity_fraction_of_model_params": est.parity_fraction_of_model_params if holds else None,
    }


def three_sizes(est: Estimate, method: Method) -> dict[str, int | None]:
    """A trained row's saved and minimal sizes (peft's tuners: :class:`~estimator.stores.base.Footprint`;
    the other stores save and need exactly their trained parameters); null for the cache and pretraining."""
    from estimator.stores import STORES

    fp = STORES[method].footprint(est.query)
    keys = ("saved_params", "saved_bytes", "minimal_params", "minimal_bytes")
    if fp is None:
        return dict.fromkeys(keys)
    return dict(zip(keys, (fp.saved_params, fp.saved_bytes, fp.minimal_params, fp.minimal_bytes), strict=True))


def crossover_record(crossing: Crossover) -> dict[str, Any]:
    """The crossover with its reason: ``tokens`` null unless the cache crosses the adapter (``crosses``);
    ``state-exceeds``: the fixed state alone is ``state_to_adapter_bytes_ratio`` times the adapter;
    ``never-reaches``: windows cap the cache at ``cache_ceiling_bytes``, below the adapter."""
    return {
        "tokens": crossing.tokens,
        "reason": crossing.reason.value,
        "state_to_adapter_bytes_ratio": crossing.state_multiple,
        "cache_ceiling_bytes": crossing.ceiling_bytes,
        "state_bytes": crossing.state_bytes,
    }

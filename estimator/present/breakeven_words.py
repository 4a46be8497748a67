"""The words of `estimate breakeven`: how each fine-tuning run is named, when it pays for itself, how long a
phase takes, and the assumptions behind every number (:mod:`estimator.present.breakeven` prints them)."""

from __future__ import annotations

from typing import Any

from estimator.cost import EXPOSURES_FOR_CAPACITY


def finetune_label(result: Any) -> str:
    """``LoRA r=32, all-linear, 1 epoch`` or ``full fine-tuning, 1,000 epochs (1,000 exposures)``."""
    exposures = result.epochs * result.augmentation
    epochs = f"{result.epochs:,} epoch{'s' if result.epochs != 1 else ''}"
    augmented = f", {result.augmentation}x augmented" if result.augmentation > 1 else ""
    regime = f" ({exposures:,} exposures)" if exposures >= EXPOSURES_FOR_CAPACITY else ""
    if result.finetune.value == "full":
        return f"full fine-tuning, {epochs}{augmented}{regime}"
    return f"LoRA r={result.est.rank}, {result.est.targets.described}, {epochs}{augmented}{regime}"


def attention_words(spec: Any, kv: Any) -> str:
    """The attention FLOPs per attended position, in the form the cache format implies."""
    from estimator.architecture import layout_of
    from estimator.layout.latent import LatentAttention

    latent = next((g.mixer for g in layout_of(spec).groups if isinstance(g.mixer, LatentAttention)), None)
    if latent is None:
        from estimator.cost import attention_width

        return (
            f"attention 2 · H · (d_qk + d_v) = {2 * attention_width(spec):,} FLOPs per layer per attended position "
            "(causal; sliding windows and chunks cap the positions; recurrent layers' state updates not counted)"
        )
    width = latent.flops_width(kv)
    form = (
        "absorbed, as from the latent cache: 2 · H · (2 · kv_lora_rank + qk_rope)"
        if kv.mla.value == "latent"
        else "per head, as from the expanded cache: 2 · H · (qk_nope + qk_rope + v_head_dim)"
    )
    sparse = (
        f"; the indexer's 2 · {latent.index_heads} · {latent.index_head_dim} per earlier position, then the main "
        f"attention over the top {latent.index_topk:,}"
        if latent.index_topk
        else ""
    )
    return (
        f"MLA attention {form} = {2 * width:,} FLOPs per layer per attended position{sparse} (training, with no "
        "cache, runs per head)"
    )


def breakeven_assumptions(result: Any, device: Any) -> list[str]:
    """The assumptions under the answer, one bullet each, with the numbers of ``result`` on ``device``."""
    from estimator.cost import forward_params

    est = result.est
    spec = est.spec
    n_f = forward_params(spec)
    train = (
        "6 · N_f FLOPs per training token (full fine-tuning)"
        if result.finetune.value == "full"
        else f"4 · N_f + 6 · P = 4 · {n_f:,} + 6 · {result.active_adapter_params:,} FLOPs per training token (LoRA: "
        "frozen weights pass gradients on but keep none"
        + ("; P counts the routed experts' adapters at their k/E share" if spec.is_moe else "")
        + ")"
    )
    exposures = result.epochs * result.augmentation
    return [
        f"Forward: 2 · N_f FLOPs per token with N_f = {n_f:,} (active parameters without the input embedding"
        + (", the tied output head counted)" if spec.tie_word_embeddings else ")")
        + f", plus {attention_words(spec, est.kv)}.",
        f"Each query: {result.query_tokens} question tokens and {result.generated_tokens} generated tokens, after the "
        f"{est.tokens:,}-token context (in context) or alone (fine-tuned, whose unmerged LoRA adds 2 · P "
        "FLOPs per token).",
        "Prefix caching: the context's KV cache is computed once and kept, so each query pays only its own tokens "
        "and their attention over the context.",
        f"Fine-tuning once: {train}, over {est.tokens:,} tokens × {result.augmentation} (augmentation) × "
        f"{result.epochs} epoch{'s' if result.epochs != 1 else ''}, plus training attention in sequences of "
        f"{result.train_sequence_tokens:,} tokens (backward costs twice the forward).",
        f"Exposures: each fact is seen epochs × augmentation = {exposures:,} time{'s' if exposures != 1 else ''}; the "
        f"2 bits per parameter of the capacity figures needs about {EXPOSURES_FOR_CAPACITY:,} (Allen-Zhu & Li 2024, "
        "Physics of Language Models 3.3), so a second row trains that long"
        + (" (yours already does)." if exposures >= EXPOSURES_FOR_CAPACITY else "."),
        *(
            [
                f"Augmentation: {result.augmentation - 1} rewrite(s) of the text generated with it in context "
                "(augmented fine-tuning, Lampinen et al. 2025), counted as forward FLOPs."
            ]
            if result.augmentation > 1
            else []
        ),
        f"Time on {device.display_name}: a roofline per phase, max(FLOPs / "
        f"{device.bf16_dense_flops_per_s / 1e12:,.1f} TFLOP/s bf16 dense, bytes / "
        f"{device.memory_bandwidth_bytes_per_s / 1e12:,.2f} TB/s), the GPUs as one (ideal tensor parallelism, no "
        f"communication), at peak (real kernels reach perhaps half); "
        + (
            "one query at a time"
            if device.batch == 1
            else f"{device.batch:,} queries served together, each paying the batch's time over {device.batch:,}"
        )
        + ": prefill reads every weight once, each decoding step the routed weights "
        f"({est.weights_dtype.value}) and the adapter once and every query's cache so far; fine-tuning "
        f"compute-bound on the same GPUs. Source: {device.source}.",
        f"Deployment: {device.words()}; vLLM 0.19's pool as `estimate serve-memory` plans it (its budget of the "
        "memory torch reports, the weights' shard, its reserves), for the in-context query, the larger cache.",
        *(
            [
                f"{est.tokens:,} tokens exceed {spec.display_name}'s context window of "
                f"{est.context_window_tokens:,} tokens: the in-context figures are those of a context that long."
            ]
            if est.beyond_context_window
            else []
        ),
    ]


def after(queries: int | None) -> str:
    """``after 51 queries``, ``never`` (None), or ``from the start`` (0)."""
    if queries is None:
        return "never"
    if queries == 0:
        return "from the start (it costs less than the context alone)"
    return f"after {queries:,} quer{'y' if queries == 1 else 'ies'}"


def seconds(value: float) -> str:
    """3.2 ms, 51.3 s, 2.1 h: three significant figures in the largest fitting unit."""
    for limit, unit, scale in ((1e-3, "µs", 1e6), (1.0, "ms", 1e3), (120.0, "s", 1.0), (7200.0, "min", 1 / 60)):
        if value < limit:
            return f"{value * scale:.3g} {unit}"
    return f"{value / 3600:,.3g} h" if value < 86_400 * 3 else f"{value / 86_400:,.3g} days"

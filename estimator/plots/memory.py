"""Figure 8: memory per GPU to serve the model in context against the context length, stacked by component
(weights, prefill activations and logits, the cache), under the accelerator's memory and the engine's budget.

The tensor-parallel size is the smallest of 1, 2, 4, 8 at which the weights and activations leave room for
a cache (Llama 3 70B on H100 80 GB: 2), so the figure shows where the cache runs out of room.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from estimator.compare import Estimate
from estimator.errors import EstimatorError
from estimator.plots.style import OKABE_ITO, add_caption, legend_below, mark_context_window, new_figure, styled, title

GiB = 2**30
TP_SIZES = (1, 2, 4, 8)


@dataclass(frozen=True)
class MemoryCurve:
    tokens: np.ndarray
    weights_gib: float
    other_gib: float  # activations, logits, overhead
    cache_gib: np.ndarray
    budget_gib: float
    memory_gib: float
    tp: int
    longest: int
    device: str


def memory_curve(est: Estimate, device: str = "h100-sxm", batch: int = 1) -> MemoryCurve:
    """The components per GPU at 200 context lengths from 1k to 10x the context window (at least 1M)."""
    from estimator.accelerators import accelerator
    from estimator.memory.serving import (
        ServeSetup,
        budget_bytes,
        cache_bytes_per_gpu,
        longest_tokens,
        serve_memory,
    )
    from estimator.memory.weights import weight_bytes_per_gpu

    spec, gpu = est.spec, accelerator(device)
    budget = budget_bytes(gpu.memory_bytes, 0.9)
    setup = ServeSetup(kv=est.kv)
    for tp in TP_SIZES:
        try:
            fits = serve_memory(spec, 1, batch, ServeSetup(kv=est.kv, tp=tp), budget).fits
        except EstimatorError:  # a size the model does not split over (or recurrent layers past t = 1)
            continue
        setup = ServeSetup(kv=est.kv, tp=tp)
        if fits:
            break
    top = max(10 * spec.max_position_embeddings, 1_000_000)
    tokens = np.unique(np.geomspace(1_000, top, 200).round().astype(np.int64))
    fixed = serve_memory(spec, 1, batch, setup, budget)
    cache = np.array([batch * cache_bytes_per_gpu(spec, int(t), setup) for t in tokens], dtype=float) / GiB
    weights = weight_bytes_per_gpu(spec, setup.weights, setup.tp)
    other = fixed.total_bytes - fixed.weights_bytes - fixed.cache_bytes
    return MemoryCurve(tokens, weights / GiB, other / GiB, cache, budget / GiB, gpu.memory_bytes / GiB, setup.tp,
                       longest_tokens(spec, batch, setup, budget, int(top)), gpu.display_name)  # fmt: skip


def memory_vs_context(est: Estimate) -> Figure:
    """Stacked memory per GPU against tokens of context, on an H100 SXM 80 GB at batch 1 (weights in bf16)."""
    curve = memory_curve(est)
    with styled():
        fig, ax = new_figure(3.6)
        t = curve.tokens
        floor = np.full(t.shape, curve.weights_gib)
        ax.fill_between(t, 0, floor, color=OKABE_ITO["sky"], linewidth=0, label="weights")
        top = floor + curve.other_gib
        ax.fill_between(t, floor, top, color=OKABE_ITO["yellow"], linewidth=0, label="prefill activations, logits")
        ax.fill_between(t, top, top + curve.cache_gib, color=OKABE_ITO["vermillion"], linewidth=0,
                        label=f"cache ({est.kv.describe()})")  # fmt: skip
        device = f"{curve.device} ({curve.memory_gib:g} GiB)"
        ax.axhline(curve.memory_gib, color=OKABE_ITO["black"], linewidth=0.9, label=device)
        ax.axhline(curve.budget_gib, color=OKABE_ITO["black"], linewidth=0.9, linestyle=(0, (4, 2)),
                   label="budget: 0.9 of it (vLLM)")  # fmt: skip
        ax.set(xscale="log", xlabel="tokens of context, one sequence", ylabel="memory per GPU (GiB)")
        ax.set_xlim(t[0], t[-1])
        ax.set_ylim(0, max(curve.memory_gib * 1.15, float(top[0] + curve.cache_gib[0]) * 1.05))
        mark_context_window(ax, est, label=False)
        if 0 < curve.longest < t[-1]:
            ax.axvline(curve.longest, color=OKABE_ITO["green"], linewidth=0.8, linestyle=(0, (1, 1)))
        title(fig, f"{est.spec.display_name}: memory per GPU to serve in context (TP {curve.tp})")
        legend_below(ax, ncols=1)
        if curve.longest >= int(t[-1]):
            longest = f"a context of all {int(t[-1]):,} tokens drawn fits"
        elif curve.longest:
            longest = f"the longest context that fits is {curve.longest:,} tokens (green)"
        else:
            longest = "not even the weights fit"
        chosen = "the smallest of 1, 2, 4, 8 that fits" if curve.longest else "the largest of 1, 2, 4, 8 it splits over"
        add_caption(fig, (
            f"One sequence, tensor parallel over {curve.tp} GPU(s) ({chosen}); "
            f"weights in bf16, cache paged in blocks of 16 tokens; activations are an estimate for a prefill "
            f"chunk of 8,192 tokens; no runtime overhead. {longest[0].upper() + longest[1:]}; dotted purple: "
            "the model's context window."
        ))  # fmt: skip
    return fig

"""Figure 8: memory per GPU to serve the model in context against the context length, stacked by component
(weights, vLLM's reserves, the cache), under the memory torch reports and vLLM's budget of it.

The tensor-parallel size is the smallest of 1, 2, 4, 8 at which the weights and reserves leave room for
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
    """The components per GPU at 200 context lengths from 1k to 10x the context window (at least 1M), as
    `estimate serve-memory` plans them for vLLM: its budget of what torch reports, the weights, its reserves."""
    from estimator.accelerators import accelerator
    from estimator.memory.engine_rules import default_knobs, plan_pool
    from estimator.memory.engines import Engine
    from estimator.memory.paged import block_layout
    from estimator.memory.serving import ServeSetup
    from estimator.memory.verdict import sequence_bytes
    from estimator.units import largest_fitting

    spec, gpu = est.spec, accelerator(device)
    reported = gpu.usable_memory_bytes
    top = max(10 * spec.max_position_embeddings, 1_000_000)
    plan = None
    for tp in TP_SIZES:
        setup = ServeSetup(kv=est.kv, tp=tp)
        knobs = default_knobs(Engine.vllm, reported, gpu.display_name, spec.max_position_embeddings, tp)
        try:
            pool = plan_pool(spec, setup, Engine.vllm, knobs, reported)
            layout = block_layout(spec, est.kv, tp, knobs.block_tokens)
        except EstimatorError:  # a size the model does not split over
            continue
        plan = (setup, knobs, pool, layout)
        if pool.pool_bytes >= batch * sequence_bytes(spec, setup, layout, 1_000, knobs.max_num_batched_tokens):
            break
    if plan is None:
        raise EstimatorError(f"{spec.display_name} splits over none of 1, 2, 4, 8 GPUs; give --tp to serve-memory")
    setup, knobs, pool, layout = plan

    def need(t: int) -> int:
        return batch * sequence_bytes(spec, setup, layout, t, knobs.max_num_batched_tokens)

    tokens = np.unique(np.geomspace(1_000, top, 200).round().astype(np.int64))
    cache = np.array([need(int(t)) for t in tokens], dtype=float) / GiB
    # the longest context whose cache fits the pool (past the window too, drawn dotted)
    low = largest_fitting(lambda t: need(t) <= pool.pool_bytes, top)
    other = sum(r.bytes for r in pool.reserves)
    return MemoryCurve(tokens, pool.weights_bytes / GiB, other / GiB, cache, pool.budget_bytes / GiB,
                       reported / GiB, setup.tp, low, gpu.display_name)  # fmt: skip


def memory_vs_context(est: Estimate) -> Figure:
    """Stacked memory per GPU against tokens of context, on an H100 SXM 80 GB at batch 1 (weights in bf16)."""
    curve = memory_curve(est)
    with styled():
        fig, ax = new_figure(3.6)
        t = curve.tokens
        floor = np.full(t.shape, curve.weights_gib)
        ax.fill_between(t, 0, floor, color=OKABE_ITO["sky"], linewidth=0, label="weights")
        top = floor + curve.other_gib
        ax.fill_between(t, floor, top, color=OKABE_ITO["yellow"], linewidth=0, label="vLLM's reserves")
        ax.fill_between(t, top, top + curve.cache_gib, color=OKABE_ITO["vermillion"], linewidth=0,
                        label=f"cache ({est.kv.describe()})")  # fmt: skip
        device = f"{curve.device} ({curve.memory_gib:.2f} GiB reported)"
        ax.axhline(curve.memory_gib, color=OKABE_ITO["black"], linewidth=0.9, label=device)
        ax.axhline(curve.budget_gib, color=OKABE_ITO["black"], linewidth=0.9, linestyle=(0, (4, 2)),
                   label="budget: 0.9 of it (vLLM 0.19)")  # fmt: skip
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
            f"bf16 weights, vLLM's blocks of 16 tokens; reserves: its profile peak, RoPE cache, non-torch memory. "
            f"{longest[0].upper() + longest[1:]}; dotted purple: the model's context window."
        ))  # fmt: skip
    return fig

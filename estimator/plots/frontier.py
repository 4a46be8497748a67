"""The in-context frontier: bytes per token of text against tokens, on one log axis, for the plain cache, every
published way to shrink it (``--kv-method``, or a default set), LoRA at two ranks, the smallest adapter and
pretraining. A shrunk cache is still a line that never falls (its bytes per token are constant while no window
fills); a Cartridge, like an adapter, is fixed bytes spread over the text (1/T)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from matplotlib.figure import Figure

from estimator.compare import Estimate, evaluate
from estimator.errors import EstimatorError
from estimator.frontier import parse_kv_methods
from estimator.frontier.methods import KVMethod
from estimator.frontier.sizes import method_cache_bytes, method_fixed_bytes
from estimator.kv import kv_cache_bytes
from estimator.plots.style import (
    KV_COLOUR,
    OKABE_ITO,
    PRETRAINING_COLOUR,
    RANK_STYLES,
    add_caption,
    caption,
    legend_below,
    mark_context_window,
    new_figure,
    styled,
    title,
)
from estimator.query.vocabulary import CORE, Method
from estimator.stores import STORES
from estimator.stores.targets import lora_bytes
from estimator.units import log_grid

DEFAULT_METHODS = "nvfp4,turboquant:bits=3.5,commvq:bits=2,commvq:bits=1,kvtc:ratio=20,transmla,kvzip:keep=0.3,"
DEFAULT_METHODS += "cartridge:tokens=2048"
TOKENS = (100, 10**8)
POINTS_PER_DECADE = 10
# the LoRA lines take RANK_STYLES' sky and blue: the methods take the other colours
METHOD_COLOURS = (OKABE_ITO["orange"], OKABE_ITO["green"], OKABE_ITO["purple"], "#7f7f7f", "#8c564b",
                  "#17becf", "#bcbd22", OKABE_ITO["yellow"])  # fmt: skip
DASHES = {"quantisation": "solid", "conversion": (0, (4, 1.5)), "eviction": (0, (1, 1.2)),
          "trained cache": (0, (5, 1, 1, 1))}  # fmt: skip


def frontier_methods(est: Estimate) -> list[KVMethod]:
    """The query's ``--kv-method`` methods, or the default set; those that do not apply to the model are left out
    (MLA conversions on a model whose layers already cache a latent)."""
    chosen = est.query.kv_methods or parse_kv_methods(DEFAULT_METHODS)
    kept = []
    for method in chosen:
        try:
            method.check(est.query)
            method_fixed_bytes(est.query, method)
        except EstimatorError:
            continue
        kept.append(method)
    return kept


def best_adapter(est: Estimate) -> tuple[str, int] | None:
    """The smallest trained store of the nine rows (LoRA, DoRA, IA3, LoReFT, prefix, prompt tuning; not full
    fine-tuning): its label and bytes (Llama 3.1 8B, defaults: prompt tuning, 20 · 4,096 · 2 = 163,840 bytes)."""
    rows = evaluate(replace(est.query, methods=CORE, kv_methods=())).rows
    trained = [r for r in rows if r.crossover is not None and r.method is not Method.full]
    if not trained:
        return None
    best = min(trained, key=lambda r: r.bytes)
    return STORES[best.method].label(est.query), best.bytes


def kv_frontier(est: Estimate) -> Figure:
    """Bytes per token of text against T (10^2 to 10^8) on one log-log axis."""
    q = est.query
    t = np.array(list(log_grid(TOKENS[0], TOKENS[1], 6 * POINTS_PER_DECADE + 1)), dtype=float)
    grid = [int(x) for x in t]
    with styled():
        fig, ax = new_figure(5.2)
        plain = [kv_cache_bytes(q.spec, n, q.kv) / n for n in grid]
        ax.plot(t, plain, color=KV_COLOUR, linewidth=1.8, label=f"plain cache ({q.kv.dtype.value})")
        for i, method in enumerate(frontier_methods(est)):
            per_token = [method_cache_bytes(q, method, n) / n for n in grid]
            ax.plot(t, per_token, color=METHOD_COLOURS[i % len(METHOD_COLOURS)], linestyle=DASHES[method.kind],
                    linewidth=1.1, label=method.label())  # fmt: skip
        ranks = (8, est.rank) if est.rank != 8 else (8, 64)
        for (colour, dashes), rank in zip(RANK_STYLES[:2], ranks, strict=True):
            size = lora_bytes(est.targets, rank, q.adapter_dtype)
            ax.plot(t, size / t, color=colour, linestyle=dashes, linewidth=1.4, label=f"LoRA r={rank}")
        if (best := best_adapter(est)) is not None:
            ax.plot(t, best[1] / t, color="#333333", linestyle=(0, (2, 1)), linewidth=1.0,
                    label=f"smallest adapter: {best[0]}")  # fmt: skip
        if (pretraining := est.pretraining_bytes_per_token) is not None:
            ax.axhline(pretraining, color=PRETRAINING_COLOUR, linestyle=(0, (1, 2)), linewidth=1.1,
                       label=f"pretraining ({pretraining:.2g} B/token)")  # fmt: skip
        ax.set(xscale="log", yscale="log", xlim=(t[0], t[-1]), xlabel="tokens of text, T",
               ylabel="bytes per token of text (B)")  # fmt: skip
        mark_context_window(ax, est)
        title(fig, f"{est.spec.display_name}: the in-context frontier against text in weights")
        legend_below(ax, ncols=1)
        add_caption(
            fig,
            caption(est, pretraining=True) + " Shrunk caches: bytes computed from the layout as each paper counts "
            "them; their quality is the papers' (see `estimate --kv-method` assumptions), not drawn.",
        )
    return fig

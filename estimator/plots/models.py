"""Figure 3: KV bytes per token and the KV ÷ LoRA ratio for every zoo model, side by side.

Bars are coloured by attention layout (multi-head, grouped-query, multi-query, latent), so what
grouped-query attention does to the cache, and to the ratio, shows at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from estimator.compare import Estimate
from estimator.plots.style import OKABE_ITO, SMALL_PT, WIDTH_IN, add_caption, caption, styled, title
from estimator.present.tables import format_ratio
from estimator.specs import ModelSpec
from estimator.sweep import across_models
from estimator.units import format_tokens_short
from estimator.zoo import load_all_specs

ATTENTION_COLOURS = {
    "MHA (KV = query heads)": OKABE_ITO["vermillion"],
    "GQA (fewer KV heads)": OKABE_ITO["blue"],
    "MQA (one KV head)": OKABE_ITO["green"],
    "MLA (latent cache)": OKABE_ITO["purple"],
    "hybrid (KV + state)": OKABE_ITO["orange"],
    "SSM (state only)": OKABE_ITO["black"],
}


def attention_kind(spec: ModelSpec) -> str:
    """Which of :data:`ATTENTION_COLOURS` describes the model's cache."""
    from estimator.kv import grows, kv_state_bytes, windowed
    from estimator.units import DType

    kinds = list(ATTENTION_COLOURS)
    if kv_state_bytes(spec, DType.bf16):
        return kinds[4] if grows(spec) or windowed(spec) else kinds[5]
    if spec.is_mla:
        return kinds[3]
    if spec.num_key_value_heads == 1:
        return kinds[2]
    return kinds[0] if spec.num_key_value_heads == spec.num_attention_heads else kinds[1]


def models_data(
    est: Estimate, specs: Sequence[ModelSpec] | None = None
) -> tuple[list[Estimate], list[tuple[ModelSpec, str]]]:
    """The data of the figure: ``est``'s query for every spec (default: the zoo), sorted by KV bytes per token.

    Models the query does not apply to (e.g. ``--targets qv`` on a fused qkv) are returned apart, with why.
    The query's own model is drawn too when it is not in the zoo (a ``--config``).
    """
    chosen = list(specs) if specs is not None else load_all_specs()
    if all(s.name != est.spec.name for s in chosen):
        chosen.append(est.spec)
    done, skipped = across_models(est, chosen)
    return sorted(done, key=lambda e: (e.kv_bytes_per_token, e.spec.name)), skipped


def models_kv_vs_lora(est: Estimate, specs: Sequence[ModelSpec] | None = None) -> Figure:
    """Left: KV bytes per token at ``est.tokens``; right: KV ÷ LoRA bytes at (tokens, rank). One bar per model."""
    rows, skipped = models_data(est, specs)
    names = [e.spec.display_name for e in rows]
    colours = [ATTENTION_COLOURS[attention_kind(e.spec)] for e in rows]
    y = np.arange(len(rows))
    with styled():
        height = 2.0 + 0.15 * len(rows)
        fig = Figure(figsize=(WIDTH_IN, height), layout="constrained")
        grid = fig.add_gridspec(2, 2, height_ratios=(0.45, height - 0.45))
        key = fig.add_subplot(grid[0, :])  # the legend's own row, over both panels: nothing else can be there
        key.axis("off")
        left = fig.add_subplot(grid[1, 0])
        right = fig.add_subplot(grid[1, 1], sharey=left)
        right.tick_params(axis="y", labelleft=False)
        kv = [e.kv_bytes_per_token for e in rows]
        ratio = [e.kv_to_lora_bytes_ratio for e in rows]
        held = [e.holds_all_tokens for e in rows]  # hollow: the cache keeps only a window, not the text
        faces = [c if h else "none" for c, h in zip(colours, held, strict=True)]
        left.scatter(kv, y, facecolors=faces, edgecolors=colours, s=12, zorder=3, linewidths=0.8)
        right.scatter(ratio, y, facecolors=faces, edgecolors=colours, s=12, zorder=3, linewidths=0.8)
        right.axvline(1, color="#555555", linewidth=0.7)
        for i, (value, whole) in enumerate(zip(ratio, held, strict=True)):
            right.annotate(  # right of the point, clear of the axis; none for a cache that keeps only a window
                format_ratio(value) if whole else "window",
                (value, i),
                xytext=(4, 0),
                textcoords="offset points",
                fontsize=SMALL_PT,
                va="center",
                ha="left",
            )
        left.set_yticks(y, names)
        for i, (label, e) in enumerate(zip(left.get_yticklabels(), rows, strict=True)):
            if e.spec.name == est.spec.name:  # the query's own model in bold, its row shaded
                label.set_fontweight("bold")
                for ax in (left, right):
                    ax.axhspan(i - 0.45, i + 0.45, color=OKABE_ITO["yellow"], alpha=0.25, linewidth=0, zorder=0)
        left.tick_params(axis="y", labelsize=SMALL_PT, length=0)
        tokens = format_tokens_short(est.tokens)
        left.set(xscale="log", xlabel="bytes per token")
        left.set_xlim(min(kv) / 2, max(kv) * 2)
        right.set(xscale="log", xlabel="KV ÷ LoRA")
        right.set_xlim(min(min(ratio), 1) / 4, max(ratio) * 30)  # room right of each point for its label
        for ax in (left, right):
            ax.grid(axis="y", linewidth=0.3, alpha=0.5)
            ax.set_ylim(-0.7, len(rows) - 0.3)
        title(fig, f"Cache bytes per token, and KV ÷ LoRA r={est.rank}, at {tokens} tokens of text")
        handles = [Patch(color=c, label=k) for k, c in ATTENTION_COLOURS.items() if c in colours]
        centred = blended_transform_factory(fig.transFigure, key.transAxes)  # on the page, not the panel
        key.legend(handles=handles, loc="center", bbox_to_anchor=(0.5, 0.5), bbox_transform=centred, ncols=2,
                   frameon=False, fontsize=SMALL_PT, columnspacing=1.0)  # fmt: skip
        left_out = (
            f" Left out (targets do not apply): {', '.join(s.display_name for s, _ in skipped)}." if skipped else ""
        )
        hollow = (
            " Hollow: every layer keeps a window shorter than the text, so the cache holds its last tokens only."
            if not all(held)
            else ""
        )
        words = " Sliding windows count at their length; recurrent states count whole, whatever T." + hollow
        add_caption(fig, caption(est, model=False) + words + left_out)
    return fig

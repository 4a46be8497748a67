"""Figure 3: KV bytes per token and the KV ÷ LoRA ratio for every zoo model, side by side.

Bars are coloured by attention layout (multi-head, grouped-query, multi-query, latent), so what
grouped-query attention does to the cache, and to the ratio, shows at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from estimator.compare import Estimate
from estimator.plots.style import OKABE_ITO, add_caption, caption, new_figure, styled
from estimator.present.tables import format_ratio
from estimator.specs import ModelSpec
from estimator.sweep import across_models
from estimator.units import format_tokens_short
from estimator.zoo import load_all_specs

ATTENTION_COLOURS = {
    "MHA (KV heads = query heads)": OKABE_ITO["vermillion"],
    "GQA (KV heads < query heads)": OKABE_ITO["blue"],
    "MQA (one KV head)": OKABE_ITO["green"],
    "MLA (latent cache)": OKABE_ITO["purple"],
}


def attention_kind(spec: ModelSpec) -> str:
    """Which of :data:`ATTENTION_COLOURS` describes the model's cache."""
    kinds = list(ATTENTION_COLOURS)
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
    """
    done, skipped = across_models(est, list(specs) if specs is not None else load_all_specs())
    return sorted(done, key=lambda e: (e.kv_bytes_per_token, e.spec.name)), skipped


def models_kv_vs_lora(est: Estimate, specs: Sequence[ModelSpec] | None = None) -> Figure:
    """Left: KV bytes per token at ``est.tokens``; right: KV ÷ LoRA bytes at (tokens, rank). One bar per model."""
    rows, skipped = models_data(est, specs)
    names = [e.spec.display_name for e in rows]
    colours = [ATTENTION_COLOURS[attention_kind(e.spec)] for e in rows]
    y = np.arange(len(rows))
    with styled():
        fig, (left, right) = new_figure(1.6 + 0.15 * len(rows), ncols=2, sharey=True)
        kv = [e.kv_bytes_per_token for e in rows]
        ratio = [e.ratio for e in rows]
        left.scatter(kv, y, c=colours, s=12, zorder=3)
        right.scatter(ratio, y, c=colours, s=12, zorder=3)
        right.axvline(1, color="#555555", linewidth=0.7)
        for i, value in enumerate(ratio):  # labels away from the line at 1
            side = 1 if value >= 1 else -1
            right.annotate(
                format_ratio(value),
                (value, i),
                xytext=(4 * side, 0),
                textcoords="offset points",
                fontsize=5,
                va="center",
                ha="left" if side > 0 else "right",
            )
        left.set_yticks(y, names)
        for label, e in zip(left.get_yticklabels(), rows, strict=True):
            if e.spec.name == est.spec.name:  # the query's own model in bold
                label.set_fontweight("bold")
        left.tick_params(axis="y", labelsize=5.5, length=0)
        tokens = format_tokens_short(est.tokens)
        left.set(xscale="log", xlabel=f"KV bytes per token\nat {tokens} tokens (B)")
        left.set_xlim(min(kv) / 2, max(kv) * 2)
        right.set(xscale="log", xlabel=f"KV ÷ LoRA r={est.rank}\nat {tokens} tokens")
        right.set_xlim(min(min(ratio), 1) / 8, max(ratio) * 8)
        for ax in (left, right):
            ax.grid(axis="y", linewidth=0.3, alpha=0.5)
            ax.set_ylim(-0.7, len(rows) - 0.3)
        left.set_title(f"KV cache against a rank-{est.rank} LoRA at {tokens} tokens", loc="left", x=-0.9)
        handles = [Patch(color=c, label=k) for k, c in ATTENTION_COLOURS.items() if c in colours]
        fig.legend(handles=handles, loc="outside upper center", ncols=2, fontsize=5.5, frameon=False)
        left_out = (
            f" Left out (targets do not apply): {', '.join(s.display_name for s, _ in skipped)}." if skipped else ""
        )
        add_caption(fig, caption(est, model=False) + " Sliding windows count at their length." + left_out)
    return fig

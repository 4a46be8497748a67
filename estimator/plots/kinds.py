"""Figure 7: what the cache of a dense, a hybrid and a pure state-space model costs per token of text.

A dense transformer's cache grows by the same bytes with every token, so per token it is flat; a pure
SSM keeps one fixed state, so per token it falls as 1/T, like an adapter; a hybrid (a few attention
layers among recurrent ones) is the sum: the state dominates short texts, its attention layers long ones.
The query model's rank-r LoRA is drawn for scale.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from estimator.compare import Estimate, evaluate
from estimator.errors import EstimatorError
from estimator.plots.style import OKABE_ITO, add_caption, legend_below, new_figure, styled, title
from estimator.plots.tokens import token_grid
from estimator.sweep import sweep
from estimator.units import format_tokens_short
from estimator.zoo import load_spec, model_names

TRIO = (  # (zoo name, what it shows): a dense transformer, two hybrids, a pure state-space model
    ("llama3.1-8b", "dense"),
    ("qwen3-next-80b-a3b", "DeltaNet hybrid"),
    ("nemotron-h-56b", "Mamba-2 hybrid"),
    ("mamba-2.8b", "pure SSM"),
)
COLOURS = (OKABE_ITO["vermillion"], OKABE_ITO["blue"], OKABE_ITO["green"], OKABE_ITO["black"], OKABE_ITO["purple"])


def kinds_estimates(est: Estimate) -> tuple[list[tuple[Estimate, str]], list[tuple[str, str]]]:
    """``est``'s query (rank, targets, dtypes, conventions) for each model of :data:`TRIO` in the zoo, and
    for ``est``'s own model when it is none of them; apart, the models the query does not apply to, as
    (display name, why). Only their caches are drawn, so targets a model lacks (``--targets qv`` on
    Qwen3-Next, whose q and v share one map) fall back to all-linear rather than leave the model out."""
    known = set(model_names())
    chosen = [(load_spec(name), words) for name, words in TRIO if name in known]
    if all(spec.name != est.spec.name for spec, _ in chosen):
        chosen.append((est.spec, "this query's model"))
    done, skipped = [], []
    for spec, words in chosen:
        try:  # only the cache of these models is drawn, which no target changes: where the user's targets name
            done.append((evaluate(est.query.with_(spec=spec, methods=("kv", "lora"))), words))  # maps a model
        except EstimatorError:  # lacks (qv on a fused in_proj), the cache is read with peft's default
            try:
                done.append((evaluate(est.query.with_(spec=spec, methods=("kv", "lora"), targets="all-linear")), words))
            except EstimatorError as exc:  # the model itself does not take the query: leave it out, say why
                skipped.append((spec.display_name, str(exc)))
    return done, skipped


def cache_by_architecture(est: Estimate) -> Figure:
    """Cache bytes per token of text (keys, values and recurrent states) against T, for each model, with the
    query model's LoRA for scale."""
    t = token_grid()
    rows, skipped = kinds_estimates(est)
    with styled():
        fig, ax = new_figure(4.0)
        for (model, words), colour in zip(rows, COLOURS, strict=False):
            data = sweep(model, t, [est.rank])
            ax.plot(data.tokens, data.kv_bytes_per_token, color=colour, label=f"{model.spec.display_name}: {words}")
        data = sweep(est, t, [est.rank])  # one adapter for scale: the query's own
        ax.plot(data.tokens, data.lora_bytes_per_token[0], color="#777777", linestyle=(0, (4, 2)), linewidth=0.9,
                label=f"LoRA r={est.rank} of {est.spec.display_name}")  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel="tokens of new text, T", ylabel="bytes per token of text (B)")
        title(fig, "In context: a cache that grows, a state that does not, and both")
        legend_below(ax, ncols=1)
        words = (
            f"Cache in {est.kv.describe()}, one sequence: keys and values of every attention layer, and each "
            "recurrent layer's convolution and state (K - 1 columns, state in the cache's dtype, as serving "
            f"engines keep them). Dashed: LoRA r={est.rank} on {est.targets.label} in {est.adapter_dtype.value}. "
            "A pure SSM's state per token falls as 1/T like an adapter's; "
            f"a hybrid's flattens once its attention layers dominate. T up to {format_tokens_short(int(t[-1]))}, "
            "whatever each model's context window."
        )
        if skipped:
            words += f" Left out (targets do not apply): {', '.join(name for name, _ in skipped)}."
        add_caption(fig, words)
    return fig

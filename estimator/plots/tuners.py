"""Every peft tuner as a way of storing text: bytes per token of text against tokens, one line per tuner at the
query's budget (``--rank``, ``--targets``, ``--virtual-tokens``, peft's defaults for every other knob), next to the
KV cache and pretraining, on log axes.

An adapter's trained bytes A are fixed, so its line is A / T: the lines are parallel, and each is named once at the
right edge; tuners within a fifth of each other share one label (the LoRA-sized ones, for instance).
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, replace

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from estimator.compare import Estimate
from estimator.errors import MethodNotApplicableError
from estimator.kv import kv_cache_bytes
from estimator.plots.style import (
    KV_COLOUR,
    OKABE_ITO,
    PRETRAINING_COLOUR,
    SMALL_PT,
    add_caption,
    caption,
    styled,
    title,
)
from estimator.query.vocabulary import PEFT_TUNERS, Method
from estimator.stores import STORES
from estimator.units import format_bytes, log_grid

TOKENS = (100, 10**9)
POINTS = 41  # five a decade
SHARED_LABEL_DECADES = math.log10(1.2)  # tuners within 20% of each other share a label
LABEL_CHARS = 38  # a label wraps past this many characters
WIDTH_IN, HEIGHT_IN = 7.0, 8.0  # two columns wide: the names need the room
HIGHLIGHT = {  # the must-show tuners, in colour; the rest grey
    Method.lora: OKABE_ITO["blue"],
    Method.tinylora: OKABE_ITO["green"],
    Method.vera: OKABE_ITO["orange"],
    Method.vblora: OKABE_ITO["purple"],
    Method.lokr: OKABE_ITO["sky"],
    Method.fourierft: OKABE_ITO["yellow"],
}
OTHER_COLOUR = "#9a9a9a"


@dataclass(frozen=True)
class TunerLine:
    """One tuner's trained bytes at the query's budget, and its name for the label."""

    method: Method
    name: str
    trained_bytes: int


def tuner_lines(est: Estimate) -> tuple[list[TunerLine], dict[str, str]]:
    """LoRA and every peft tuner that applies to the query's model, by trained bytes; and those that do not, with
    why ({name: reason})."""
    q = replace(est.query, methods=(Method.kv, Method.lora, *PEFT_TUNERS))
    lines, skipped = [], {}
    for method in (Method.lora, *PEFT_TUNERS):
        store = STORES[method]
        name = getattr(store, "title", "LoRA")
        try:
            footprint = store.footprint(q)
        except MethodNotApplicableError as why:
            skipped[name] = str(why)
            continue
        assert footprint is not None  # every tuner is trained
        lines.append(TunerLine(method, name, footprint.bytes))
    return sorted(lines, key=lambda line: line.trained_bytes), skipped


def label_groups(lines: list[TunerLine]) -> list[list[TunerLine]]:
    """Runs of tuners (sorted by bytes) whose trained bytes lie within 20% of the run's first: one label each."""
    groups: list[list[TunerLine]] = []
    for line in lines:
        if groups and math.log10(line.trained_bytes / groups[-1][0].trained_bytes) <= SHARED_LABEL_DECADES:
            groups[-1].append(line)
        else:
            groups.append([line])
    return groups


def spread(centres: list[float], heights: list[float], span: tuple[float, float]) -> list[float]:
    """Label centres (log10 of the height, ascending) moved apart so that labels of ``heights`` (same units) do not
    overlap and stay inside ``span``: crowded labels form a block centred on their points (the classic merge of
    overlapping runs). [0, 0.01, 0.02], heights 0.1, span (−1, 1) -> [−0.09, 0.01, 0.11]."""
    blocks: list[tuple[int, int, float]] = []  # (first, last, bottom edge)

    def bottom(first: int, last: int) -> float:  # the block's bottom that centres it on its labels' points
        offsets, below = [], 0.0
        for i in range(first, last + 1):
            offsets.append(centres[i] - (below + heights[i] / 2))
            below += heights[i]
        return sum(offsets) / len(offsets)

    for i in range(len(centres)):
        block = (i, i, bottom(i, i))
        while blocks and blocks[-1][2] + sum(heights[blocks[-1][0] : blocks[-1][1] + 1]) > block[2]:
            first = blocks.pop()[0]
            block = (first, i, bottom(first, i))
        blocks.append(block)
    placed, top = [], span[0]
    for first, last, edge in blocks:
        edge = max(edge, top)
        for i in range(first, last + 1):
            placed.append(edge + heights[i] / 2)
            edge += heights[i]
        top = edge
    ceiling = span[1]  # push down from the top where the last blocks ran past it
    for i in range(len(placed) - 1, -1, -1):
        placed[i] = min(placed[i], ceiling - heights[i] / 2)
        ceiling = placed[i] - heights[i] / 2
    return placed


def tuners_bytes_per_token(est: Estimate) -> Figure:
    """Bytes per token of text against tokens (100 to 1e9) for LoRA and every peft tuner at the query's budget,
    beside the KV cache and pretraining; each tuner's line is its trained bytes A over T."""
    lines, skipped = tuner_lines(est)
    grid = np.array(list(log_grid(*TOKENS, POINTS)), dtype=float)
    kv = np.array([kv_cache_bytes(est.spec, int(t), est.kv) / t for t in grid])
    with styled():
        fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), layout="constrained")
        ax = fig.subplots()
        ax.plot(grid, kv, color=KV_COLOUR, linewidth=1.8, label=f"KV cache ({est.kv.dtype.value})")
        for line in reversed(lines):  # the small ones drawn last, on top
            colour = HIGHLIGHT.get(line.method, OTHER_COLOUR)
            width = 1.4 if line.method in HIGHLIGHT else 0.7
            ax.plot(grid, line.trained_bytes / grid, color=colour, linewidth=width)
        pretraining = est.pretraining_bytes_per_token
        if pretraining is not None:
            ax.axhline(pretraining, color=PRETRAINING_COLOUR, linestyle=(0, (1, 2)), linewidth=1.1)
        ax.set(xscale="log", yscale="log", xlim=(grid[0], grid[-1]))
        ax.set(xlabel="tokens of new text learned, T", ylabel="bytes per token of text (B)")
        low, high = ax.get_ylim()
        ax.set_ylim(low, high)  # fixed before the labels are placed on it
        ax.yaxis.set_minor_locator(NullLocator())  # sixteen decades: minor ticks would only crowd (and slow) it
        _label_left(ax, "KV cache", float(kv[0]), KV_COLOUR)
        title(fig, f"{est.spec.display_name}: every peft tuner, bytes per token learned")
        add_caption(fig, _caption(est, skipped))
        fig.draw_without_rendering()  # the layout fixes the axes' height, which sets a label's height in decades
        points = ax.get_position().height * HEIGHT_IN * 72
        _label_right(ax, lines, grid[-1], (math.log10(low), math.log10(high)), points)
        if pretraining is not None:
            ax.text(grid[0], pretraining, " pretraining", fontsize=SMALL_PT, va="bottom", ha="left",
                    color=PRETRAINING_COLOUR)  # fmt: skip
    return fig


def _label_right(ax: object, lines: list[TunerLine], right: float, span: tuple[float, float], points: float) -> None:
    """Each label group's names at the right edge, at its line's height, spread apart to stay readable."""
    from matplotlib.axes import Axes

    assert isinstance(ax, Axes)
    groups = label_groups(lines)
    texts = [
        textwrap.fill(f"{', '.join(line.name for line in group)} ({_bytes_range(group)})", LABEL_CHARS)
        for group in groups
    ]
    line_height = (span[1] - span[0]) * SMALL_PT * 1.4 / points  # one 7 pt line and its spacing, in decades
    heights = [line_height * (text.count("\n") + 1) for text in texts]
    centres = [math.log10(group[0].trained_bytes / right) for group in groups]
    for group, text, y, placed in zip(groups, texts, centres, spread(centres, heights, span), strict=True):
        colour = next((HIGHLIGHT[line.method] for line in group if line.method in HIGHLIGHT), "#444444")
        ax.plot([right, right * 1.7], [10**y, 10**placed], color="#bbbbbb", linewidth=0.4, clip_on=False)
        ax.text(right * 1.8, 10**placed, text, fontsize=SMALL_PT, va="center", ha="left", color=colour)


def _bytes_range(group: list[TunerLine]) -> str:
    """The group's trained bytes: one size, or the smallest and largest (a group spans at most 20%)."""
    low, high = format_bytes(group[0].trained_bytes), format_bytes(group[-1].trained_bytes)
    return low if low == high else f"{low}–{high}"


def _label_left(ax: object, text: str, y: float, colour: str) -> None:
    from matplotlib.axes import Axes

    assert isinstance(ax, Axes)
    ax.text(TOKENS[0] * 1.1, y * 1.3, text, fontsize=SMALL_PT, color=colour, va="bottom", ha="left")


def _caption(est: Estimate, skipped: dict[str, str]) -> str:
    q = est.query
    budget = f"r = {q.rank} where a tuner has a rank, {q.virtual_tokens} virtual tokens, peft's defaults otherwise"
    words = [f"Trained bytes of each tuner over T ({budget}); saved and minimal bytes: estimate --methods peft."]
    if skipped:
        words.append("Not applicable: " + "; ".join(f"{name} ({why})" for name, why in skipped.items()) + ".")
    return " ".join(words) + " " + caption(est, pretraining=True)

"""The one style every figure shares, the caption line, and :func:`save`.

Sized for a single column of a two-column paper (3.5 in wide) with no text below 7 pt, so a figure
printed at that width stays readable; SVG keeps its text as text (searchable, editable). Colours are
the Okabe-Ito palette, safe for the common forms of colour blindness; lines also differ by dash
pattern, so they survive greyscale printing.
Files are deterministic: no dates or software versions in their metadata, fixed SVG ids.
"""

from __future__ import annotations

import io
import re
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import matplotlib as mpl
from cycler import cycler
from matplotlib.figure import Figure

from estimator.units import format_tokens_short

if TYPE_CHECKING:
    from estimator.compare import Estimate

WIDTH_IN = 3.5  # one column of a two-column paper
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}
KV_COLOUR = OKABE_ITO["vermillion"]
PRETRAINING_COLOUR = OKABE_ITO["black"]
RANK_STYLES = [  # LoRA lines by rank, in order: colour and dash pattern
    (OKABE_ITO["sky"], (0, (4, 1.5))),
    (OKABE_ITO["blue"], "solid"),
    (OKABE_ITO["green"], (0, (3, 1, 1, 1))),
    (OKABE_ITO["purple"], (0, (5, 1, 1, 1, 1, 1))),
    (OKABE_ITO["orange"], (0, (2, 1))),
]
FORMATS = ("png", "svg", "pdf")
MIN_FONT_PT = 7  # the smallest text on any figure, at one-column width
SMALL_PT = MIN_FONT_PT  # annotations, legends, tick labels, the caption
CAPTION_PT = SMALL_PT
TITLE_PT = 8.5
CAPTION_GID = "estimator-caption"

STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 7.5,
    "axes.titlesize": 8.5,
    "axes.labelsize": 7.5,
    "xtick.labelsize": SMALL_PT,
    "ytick.labelsize": SMALL_PT,
    "legend.fontsize": SMALL_PT,
    "legend.framealpha": 0.9,
    "axes.prop_cycle": cycler(color=[c for c, _ in RANK_STYLES]),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.linewidth": 0.4,
    "grid.alpha": 0.35,
    "lines.linewidth": 1.3,
    "figure.dpi": 150,
    "savefig.dpi": 300,
    "svg.hashsalt": "estimator",  # fixed ids: the same figure gives the same SVG
    "svg.fonttype": "none",  # text stays text in SVG
    "pdf.fonttype": 42,
}
METADATA: dict[str, dict[str, Any]] = {  # no dates, no versions: files differ only when figures do
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None},
}


@contextmanager
def styled() -> Iterator[None]:
    """Draw inside this block: artists take their fonts and colours from :data:`STYLE`."""
    with mpl.rc_context(cast(Any, STYLE)):
        yield


def new_figure(height_in: float, **subplots: Any) -> tuple[Figure, Any]:
    """A figure one column wide with constrained layout (call inside :func:`styled`); no pyplot state."""
    fig = Figure(figsize=(WIDTH_IN, height_in), layout="constrained")
    return fig, fig.subplots(**subplots)


def add_caption(fig: Figure, text: str) -> None:
    """A small caption under the axes, wrapped to the figure's width; the layout leaves room for it."""
    chars = int(WIDTH_IN * 72 / (CAPTION_PT * 0.55))  # DejaVu Sans averages ~0.55 em per character
    lines = textwrap.wrap(text, width=chars)
    height_in = (len(lines) * 1.25 + 0.6) * CAPTION_PT / 72
    share = height_in / fig.get_figheight()
    fig.text(0.012, 0.008, "\n".join(lines), fontsize=CAPTION_PT, color="#333333", va="bottom", ha="left",
             gid=CAPTION_GID)  # fmt: skip
    engine = fig.get_layout_engine()
    if engine is not None:
        engine.set(rect=(0, share, 1, 1 - share))  # type: ignore[call-arg]


def mark_context_window(ax: Any, est: Estimate, *, label: bool = True) -> None:
    """A dotted vertical line at the model's context window (max_position_embeddings) on a token axis,
    where it falls inside the axis: token counts beyond it are more than the model reads at once."""
    window = est.spec.max_position_embeddings
    low, high = ax.get_xlim()
    if not low < window < high:
        return
    ax.axvline(window, color=OKABE_ITO["purple"], linewidth=0.7, linestyle=(0, (1, 1.5)), zorder=1)
    if label:  # at the top of the axes, beside the line, on the side with room
        import math

        right_half = math.log(window / low) > math.log(high / low) / 2
        ax.annotate(
            f"context window {window:,}",
            (window, 0.97),
            xycoords=("data", "axes fraction"),
            xytext=(-3 if right_half else 3, 0),
            textcoords="offset points",
            fontsize=SMALL_PT,
            color=OKABE_ITO["purple"],
            va="top",
            ha="right" if right_half else "left",
        )


LEGEND_GAP_PT = 30  # below an axes' bottom edge: its tick labels and x label
LEGEND_COLUMN_CHARS = 26  # the longest label two legend columns fit across one column of a page


def legend_below(
    ax: Any, handles: Sequence[Any] | None = None, ncols: int = 2, *, x: float = 0.5, gap_pt: float = LEGEND_GAP_PT
) -> Any:
    """The legend under ``ax`` (centred at ``x`` in axes widths), ``gap_pt`` below its bottom edge: past its
    tick labels and x label, where no curve or note can be; the constrained layout makes room for it."""
    from matplotlib.transforms import offset_copy

    anchor = offset_copy(ax.transAxes, fig=ax.figure, y=-gap_pt, units="points")
    kwargs: dict[str, Any] = {"handles": list(handles)} if handles is not None else {}
    labels = [h.get_label() for h in (handles if handles is not None else ax.get_legend_handles_labels()[0])]
    if max((len(str(label)) for label in labels), default=0) > LEGEND_COLUMN_CHARS:
        ncols = 1  # two columns of long labels would run off the page
    return ax.legend(**kwargs, loc="upper center", bbox_to_anchor=(x, 0.0), bbox_transform=anchor, ncols=ncols,
                     frameon=False, fontsize=SMALL_PT, columnspacing=1.0, handlelength=2.2)  # fmt: skip


def legend_above(ax: Any, handles: Sequence[Any], ncols: int = 2, *, x: float = 0.5) -> Any:
    """The legend over ``ax`` (centred at ``x`` in axes widths), under the figure's title."""
    from matplotlib.transforms import offset_copy

    anchor = offset_copy(ax.transAxes, fig=ax.figure, y=4, units="points")
    return ax.legend(handles=list(handles), loc="lower center", bbox_to_anchor=(x, 1.0), bbox_transform=anchor,
                     ncols=ncols, frameon=False, fontsize=SMALL_PT, columnspacing=1.0)  # fmt: skip


def title(fig: Figure, text: str) -> None:
    """The figure's title, wrapped to its width (a long model name would otherwise run off the page)."""
    chars = int(WIDTH_IN * 72 / (TITLE_PT * 0.6))
    fig.suptitle("\n".join(textwrap.wrap(text, width=chars)), fontsize=TITLE_PT)


def plain(fig: Figure, *, title: bool = True, caption: bool = True) -> Figure:
    """The figure without its title (``title=False``) or its caption (``caption=False``), for a paper
    that sets its own; the layout takes back the room they held."""
    if not title:
        suptitle = getattr(fig, "_suptitle", None)  # matplotlib keeps no public handle
        if suptitle is not None:
            suptitle.remove()
            setattr(fig, "_suptitle", None)  # noqa: B010 (a private attribute, set as matplotlib does)
        for ax in fig.axes:
            ax.set_title("")
    if not caption:
        for text in list(fig.texts):
            if text.get_gid() == CAPTION_GID:
                text.remove()
        engine = fig.get_layout_engine()
        if engine is not None:
            engine.set(rect=(0, 0, 1, 1))  # type: ignore[call-arg]
    return fig


def caption(est: Estimate, *, pretraining: bool = False, model: bool = True) -> str:
    """The model and every assumption behind a figure's numbers, in one line."""
    words = [f"{est.spec.display_name} ({est.params:,} parameters)."] if model else []
    words.append(f"KV cache: {est.kv.describe()}, one sequence.")
    names = ", ".join(dict.fromkeys(linear.short_name for linear in est.targets.linears))
    targets = f"{est.targets.label} ({names})" if model else est.targets.label  # module names differ by model
    words.append(f"LoRA on {targets} in {est.adapter_dtype.value}.")
    if pretraining and est.pretraining_tokens is not None:
        tokens = format_tokens_short(est.pretraining_tokens)
        words.append(f"Pretraining: all weights in {est.weights_dtype.value} over {tokens} tokens.")
    elif pretraining:
        words.append("Pretraining: no published token count (give --pretraining-tokens).")
    if est.spec.is_moe:
        words.append(f"Experts: {est.query.experts.value}.")
    words.append("Bytes in SI units (1 kB = 1,000 B); estimator, exact formulas.")
    return " ".join(words)


_SVG_ID = re.compile(r'id="([A-Za-z0-9_]*[0-9a-f]{10})"')


def stable_svg_ids(svg: str) -> str:
    """Renumber matplotlib's hashed SVG ids (clip paths, markers) in order of appearance.

    The hashes cover layout floats whose last bits can differ from one process to the next (string
    hashing is salted per process), so the same figure would otherwise give different files.
    """
    for number, old in enumerate(dict.fromkeys(_SVG_ID.findall(svg))):
        svg = svg.replace(old, f"{old[:-10]}id{number}")
    return svg


def save(fig: Figure, stem: Path, formats: Sequence[str] = ("png",)) -> list[Path]:
    """Write ``stem.<format>`` for each format, with deterministic metadata; return the paths."""
    paths = []
    stem.parent.mkdir(parents=True, exist_ok=True)
    with styled():
        for fmt in formats:
            path = stem.with_name(f"{stem.name}.{fmt}")
            if fmt == "svg":
                text = io.StringIO()
                fig.savefig(text, format=fmt, metadata=METADATA[fmt])
                path.write_text(stable_svg_ids(text.getvalue()), encoding="utf-8")
            else:
                fig.savefig(path, format=fmt, metadata=METADATA[fmt])
            paths.append(path)
    return paths

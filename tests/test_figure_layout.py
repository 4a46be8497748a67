"""Figures fit for a paper: every piece of text inside the figure, no two annotations overlapping, nothing
smaller than 7 pt at one-column width, SVG text kept as text, and titles and captions that can be left off."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

pytest.importorskip("matplotlib")

from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from estimator.compare import estimate
from estimator.plots import FIGURES, save
from estimator.plots.style import MIN_FONT_PT, plain
from estimator.zoo import load_spec

QUERIES = [  # the defaults, a windowed model past its window, a long context, experts, a latent cache
    ("llama3-70b", 100_000, 32),
    ("gemma3-27b", 1_000_000, 32),
    ("mistral-7b-v0.1", 1_000_000, 32),
    ("deepseek-v3", 100_000, 32),
    ("gpt2", 1_000, 8),
]


def _texts(fig: Figure) -> list[Text]:
    """Every visible, non-empty text artist of the figure (legend entries included)."""
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _tick_labels(fig: Figure) -> set[int]:
    """Tick labels of every axis, secondary axes included."""
    return {id(t) for axis in fig.findobj(Axis) for t in axis.get_ticklabels(which="both")}


def _boxes(fig: Figure) -> list[tuple[str, Bbox]]:
    """What must not overlap: annotations, titles, axis labels, the caption, each legend as a whole.
    Tick labels are matplotlib's own layout and only checked to lie inside the figure."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    legends = [obj for obj in fig.findobj(Legend)]
    in_legend = {id(t) for legend in legends for t in legend.findobj(Text)}
    ticks = _tick_labels(fig)
    boxes = [(f"legend {i}", legend.get_window_extent(renderer)) for i, legend in enumerate(legends)]
    for text in _texts(fig):
        if id(text) not in in_legend and id(text) not in ticks:
            boxes.append((text.get_text()[:40], text.get_window_extent(renderer)))
    return boxes


def _check(fig: Figure, where: str) -> None:
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    frame = fig.bbox
    ticks = _tick_labels(fig)
    for text in _texts(fig):
        box = text.get_window_extent(renderer)
        assert text.get_fontsize() >= MIN_FONT_PT, f"{where}: {text.get_text()[:40]!r} at {text.get_fontsize()} pt"
        if id(text) in ticks:  # matplotlib's own layout (and labels of ticks outside the view are kept, unseen)
            continue
        inside = box.x0 >= frame.x0 - 1 and box.y0 >= frame.y0 - 1 and box.x1 <= frame.x1 + 1 and box.y1 <= frame.y1 + 1
        assert inside, f"{where}: {text.get_text()[:40]!r} is clipped ({box} outside {frame})"
    for ax in fig.axes:  # notes inside an axes stay off its left and bottom spines (and their tick labels)
        frame_ax = ax.get_window_extent(renderer)
        for text in ax.texts:
            if text.get_visible() and text.get_text().strip():
                box = text.get_window_extent(renderer)
                assert box.x0 >= frame_ax.x0 - 1 and frame_ax.y0 - 1 <= box.y0 and box.y1 <= frame_ax.y1 + 1, (
                    f"{where}: {text.get_text()[:40]!r} crosses its axes' edge"
                )
    for (a, box_a), (b, box_b) in itertools.combinations(_boxes(fig), 2):
        overlap = box_a.overlaps(box_b) and Bbox.intersection(box_a, box_b) is not None
        if overlap:
            inter = Bbox.intersection(box_a, box_b)
            assert inter is None or inter.width * inter.height < 4, f"{where}: {a!r} overlaps {b!r}"


@pytest.mark.parametrize(("model", "tokens", "rank"), QUERIES, ids=[q[0] for q in QUERIES])
@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_keeps_its_text_inside_and_apart(name: str, model: str, tokens: int, rank: int) -> None:
    est = estimate(load_spec(model), tokens, rank)
    _check(FIGURES[name](est), f"{name} for {model} at {tokens:,}")


def test_svg_keeps_text_as_text(tmp_path: Any) -> None:
    est = estimate(load_spec("llama3-70b"), 100_000, 32)
    (path,) = save(FIGURES["bytes_per_token_vs_tokens"](est), tmp_path / "tokens", ["svg"])
    svg = path.read_text()
    assert "<text" in svg and "Llama 3 70B: bytes spent per token learned" in svg
    assert not re.search(r"<path[^>]*id=\"DejaVuSans-", svg)  # no glyph outlines


def test_titles_and_captions_can_be_left_off() -> None:
    est = estimate(load_spec("llama3-70b"), 100_000, 32)
    fig = plain(FIGURES["bytes_per_token_vs_tokens"](est), title=False, caption=False)
    words = " ".join(t.get_text() for t in _texts(fig))
    assert "bytes spent per token learned" not in words and "exact formulas" not in words
    _check(fig, "plain tokens figure")


def test_plot_and_figures_take_no_title_and_no_caption(tmp_path: Any) -> None:
    from estimator.cli import main

    assert main(["plot", "tokens", "--no-title", "--no-caption", "--out", str(tmp_path / "t.svg")]) == 0
    svg = (tmp_path / "t.svg").read_text()
    assert "<text" in svg and "bytes spent per token" not in svg and "exact formulas" not in svg
    assert main(["figures", "--no-caption", "--out", str(tmp_path / "all"), "--format", "svg"]) == 0
    written = [p for p in (tmp_path / "all").glob("*.svg")]
    assert written and all("exact formulas" not in p.read_text() for p in written)


def test_a_config_model_is_drawn_among_the_zoo_and_highlighted() -> None:
    """`estimate plot models --config X` drew only the zoo; the user's model is now a row, in bold."""
    from estimator.hf_config import spec_from_hf_config
    from estimator.plots.models import models_kv_vs_lora

    from .conftest import CONFIGS

    spec = spec_from_hf_config(CONFIGS / "extra" / "llama3.2-1b.json")
    fig = models_kv_vs_lora(estimate(spec, 100_000, 32))
    labels = {t.get_text(): t for ax in fig.axes for t in ax.get_yticklabels()}
    assert spec.display_name in labels and labels[spec.display_name].get_fontweight() == "bold"
    assert "Llama 3 70B" in labels and labels["Llama 3 70B"].get_fontweight() != "bold"

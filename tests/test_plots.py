"""Figures: the plotted arrays and annotated values against the formulas, labels and titles, files.

Pixels are not compared; what each figure draws is read back from its artists.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text

from estimator.compare import Estimate, estimate
from estimator.kv import kv_cache_bytes
from estimator.plots import FIGURES, write_figures
from estimator.plots.heatmap import heatmap_sweep, ratio_heatmap
from estimator.plots.models import attention_kind, models_kv_vs_lora
from estimator.plots.rank import bytes_per_token_vs_rank
from estimator.plots.style import CAPTION_GID, stable_svg_ids
from estimator.plots.tokens import bytes_per_token_vs_tokens, token_grid
from estimator.stores.targets import lora_bytes
from estimator.units import DType
from estimator.zoo import load_all_specs, load_spec

ROOT = Path(__file__).resolve().parent.parent
LLAMA_WEIGHTS_BYTES = 70_553_706_496 * 2


@pytest.fixture(scope="module")
def llama() -> Estimate:
    return estimate(load_spec("llama3-70b"), 100_000, 32)


def line(ax: Axes, label: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    (found,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return np.asarray(found.get_xdata(), dtype=float), np.asarray(found.get_ydata(), dtype=float)


def texts(fig: Figure) -> str:
    """Every word on the figure (title, notes, labels, legends, caption), wrapped lines joined."""
    found = [t.get_text() for t in fig.findobj(Text) if t.get_visible()]
    return " ".join(" ".join(found).split())


def figure_title(fig: Figure) -> str:
    suptitle = getattr(fig, "_suptitle", None)
    return "" if suptitle is None else " ".join(suptitle.get_text().split())


def figure_caption(fig: Figure) -> str:
    (caption,) = [t for t in fig.texts if t.get_gid() == CAPTION_GID]
    return " ".join(caption.get_text().split())


def assert_labelled(fig: Figure) -> None:
    """A title, axis labels on every data axes, a legend somewhere, a caption with the SI statement."""
    data_axes = [ax for ax in fig.axes if ax.get_xscale() == "log"]
    assert data_axes and all(ax.get_xlabel() or ax.get_shared_x_axes().get_siblings(ax) for ax in data_axes)
    assert all(ax.get_ylabel() for ax in data_axes)
    assert figure_title(fig)
    assert any(ax.get_legend() is not None for ax in fig.axes)
    caption = figure_caption(fig)
    assert "SI units" in caption and "bf16" in caption


def test_tokens_figure_draws_the_formulas(llama: Estimate) -> None:
    fig = bytes_per_token_vs_tokens(llama)
    top, bottom = fig.axes[:2]
    t, kv = line(top, "in context: KV cache (bf16)")
    assert t[0] == 1 and t[-1] == 10**9 and 100_000 in t
    assert np.all(kv == 327_680.0)  # 2 · 80 · 8 · 128 · 2 B, flat
    for rank in (8, 32, 128):
        tr, lora = line(top, f"LoRA r={rank}")
        expected = [rank * 12_943_360 * 2 / x for x in tr]  # r · P₁ · 2 B / T
        assert np.allclose(lora, expected, rtol=1e-15, atol=0)
        _, ratio = line(bottom, f"LoRA r={rank}")
        assert np.allclose(ratio, 327_680 * tr / (rank * 12_943_360 * 2), rtol=1e-15, atol=0)
    (pretraining,) = [ln for ln in top.get_lines() if str(ln.get_label()).startswith("pretraining")]
    assert pretraining.get_ydata()[0] == LLAMA_WEIGHTS_BYTES / 15_000_000_000_000  # 0.0094 B per token
    words = texts(fig)
    assert "39.6x at 100k tokens" in words
    assert "crossover: 2,528 tokens" in words
    assert "Llama 3 70B" in figure_title(fig)
    assert bottom.get_legend() is not None  # the legend sits under the figure, clear of every curve
    assert_labelled(fig)


def test_tokens_figure_adds_the_query_rank_and_follows_windows() -> None:
    est = estimate(load_spec("mistral-7b-v0.1"), 100_000, 64)
    fig = bytes_per_token_vs_tokens(est, ranks=(4, 16))
    top = fig.axes[0]
    labels = [ln.get_label() for ln in top.get_lines()]
    assert {"LoRA r=4", "LoRA r=16", "LoRA r=64"} <= set(labels)
    t, kv = line(top, "in context: KV cache (bf16)")
    spec = est.spec
    assert kv.tolist() == [kv_cache_bytes(spec, int(x), est.kv) / x for x in t]  # falls once the 4,096 window fills
    assert "no published token count" in figure_caption(fig)


def test_rank_figure(llama: Estimate) -> None:
    fig = bytes_per_token_vs_rank(llama)
    ax = fig.axes[0]
    r, lora = line(ax, "LoRA on all-linear (bf16)")
    assert r[0] == 1 and r[-1] == 8_192 and len(r) == 8_192
    assert lora.tolist() == [lora_bytes(llama.targets, int(x), DType.bf16) / 100_000 for x in r]
    _, kv = line(ax, "KV cache of 100k tokens")
    assert set(kv) == {327_680.0}
    words = texts(fig)
    assert "parity r = 1,266" in words and "23.2% of the model" in words
    assert "KV spends 39.6x" in words and "r > 1,024" in words
    secondary = [child for child in ax.get_children() if type(child).__name__ == "SecondaryAxis"]
    assert secondary and secondary[0].get_ylabel() == "adapter size, % of model parameters"
    # the secondary axis reads bytes per token as % of parameters: B/token · T / 2 B / N · 100
    to_percent = secondary[0]._functions[0]
    assert to_percent(327_680.0) == pytest.approx(100 * 327_680 * 100_000 / 2 / 70_553_706_496)  # 23.2%
    assert_labelled(fig)


def test_models_figure(llama: Estimate) -> None:
    fig = models_kv_vs_lora(llama)
    _key, left, right = fig.axes[:3]  # the legend's row, then the two panels
    specs = load_all_specs()
    names = [label.get_text() for label in left.get_yticklabels()]
    assert sorted(names) == sorted(s.display_name for s in specs)
    kv = left.collections[0].get_offsets()[:, 0]
    ratio = right.collections[0].get_offsets()[:, 0]
    by_name = {s.display_name: s for s in specs}
    for name, kv_value, ratio_value in zip(names, kv, ratio, strict=True):
        spec = by_name[name]
        point = estimate(spec, 100_000, 32)
        assert kv_value == point.kv_cache_bytes / 100_000
        assert ratio_value == point.kv_to_lora_bytes_ratio
    assert list(kv) == sorted(kv)  # sorted, so GQA and MHA models separate
    bold = [label.get_text() for label in left.get_yticklabels() if label.get_fontweight() == "bold"]
    assert bold == ["Llama 3 70B"]
    assert attention_kind(load_spec("llama2-7b")).startswith("MHA")
    assert attention_kind(load_spec("llama3-70b")).startswith("GQA")
    assert attention_kind(load_spec("falcon-7b")).startswith("MQA")
    assert attention_kind(load_spec("deepseek-v3")).startswith("MLA")
    assert _key.get_legend() is not None and left.get_xlabel() and right.get_xlabel()
    assert "39.6x" in texts(fig)


def test_heatmap(llama: Estimate) -> None:
    data = heatmap_sweep(llama)
    assert data.tokens[0] == 1_000 and data.tokens[-1] == 10**9
    assert data.ranks[0] == 1 and data.ranks[-1] == 8_192 and 32 in data.ranks
    fig = ratio_heatmap(llama)
    ax = fig.axes[0]
    mesh = ax.collections[0]
    drawn = np.asarray(mesh.get_array()).reshape(len(data.ranks), len(data.tokens))
    for i, j in [(0, 0), (5, 40), (len(data.ranks) - 1, len(data.tokens) - 1)]:
        t, r = int(data.tokens[j]), int(data.ranks[i])
        point = estimate(llama.spec, t, r, allow_beyond_full_rank=True)  # the heatmap reaches rank 8,192
        assert drawn[i, j] == pytest.approx(np.log10(point.kv_to_lora_bytes_ratio), rel=1e-12)
    contour = [c for c in ax.collections if type(c).__name__ == "QuadContourSet"]
    assert contour and 0.0 in list(contour[0].levels)
    assert "39.6x" in texts(fig)
    assert_labelled(fig)


def test_every_figure_has_a_title_and_caption_for_other_models() -> None:
    est = estimate(load_spec("deepseek-v3"), 1_000_000, 16, kv_dtype=DType.bf16)
    for name, draw in FIGURES.items():
        fig = draw(est)
        assert figure_title(fig), name
        assert "DeepSeek" in texts(fig) or name == "models_kv_vs_lora", name


def test_write_figures(tmp_path: Path, llama: Estimate) -> None:
    paths = write_figures(llama, tmp_path, ["png", "pdf"])
    names = sorted(p.name for p in paths)
    assert names == sorted([*(f"{n}.{f}" for n in FIGURES for f in ("png", "pdf")), "manifest.json"])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest
    assert (tmp_path / "bytes_per_token_vs_tokens.png").read_bytes()[:4] == b"\x89PNG"
    assert b"CreationDate" not in (tmp_path / "ratio_heatmap.pdf").read_bytes()


def test_stable_svg_ids() -> None:
    svg = '<clipPath id="p0123456789"/><g clip-path="url(#p0123456789)"/><path id="C0_0_abcdefabcd"/>'
    assert stable_svg_ids(svg) == '<clipPath id="pid0"/><g clip-path="url(#pid0)"/><path id="C0_0_id1"/>'


def test_figures_command_is_deterministic_and_matches_the_committed_figures(tmp_path: Path) -> None:
    """Two processes with different string-hash salts write identical bytes; the committed figures/
    are what the command writes for the default model (byte for byte with the matplotlib that drew them)."""
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / seed
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = "import sys; from estimator.cli import main; sys.exit(main(sys.argv[1:]))"
        command = [sys.executable, "-c", run, "figures", "--out", str(out), "--format", "png,svg"]
        subprocess.run(command, check=True, env=env, capture_output=True)
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outputs[0] == outputs[1]
    committed = {p.name: p.read_bytes() for p in sorted((ROOT / "figures").iterdir()) if p.name != "README.md"}
    assert sorted(committed) == sorted(outputs[0])
    manifest = json.loads(committed["manifest.json"])
    if manifest["matplotlib"] != matplotlib.__version__:
        pytest.skip(f"figures/ drawn with matplotlib {manifest['matplotlib']}, {matplotlib.__version__} here")
    assert committed == outputs[0]


def test_token_grid() -> None:
    grid = token_grid()
    assert grid[0] == 1 and grid[-1] == 10**9
    assert all(10**k in grid for k in range(10))  # 20 points per decade land on every power of ten
    assert grid == sorted(set(grid)) and len(grid) <= 9 * 20 + 1


def test_capacity_figure(llama: Estimate) -> None:
    from estimator.plots.beyond import capacity_vs_tokens

    fig = capacity_vs_tokens(llama)
    ax = fig.axes[0]
    h = 1.69 / np.log(2)
    t, info = line(ax, f"information in the text, {h:.2f} to 17.0 bits per token")
    assert np.allclose(info, t * h, rtol=1e-15, atol=0)
    (band,) = ax.collections  # from the Chinchilla floor to log2 of Llama 3's 128,256-token vocabulary
    top = band.get_paths()[0].vertices[:, 1].max()
    assert np.isclose(top, t.max() * np.log2(128_256), rtol=1e-12)
    _, kv = line(ax, "bits the KV cache stores")
    assert np.all(kv == t * 327_680 * 8)
    for rank in (8, 32, 128):
        params = rank * 12_943_360
        (found,) = [ln for ln in ax.get_lines() if str(ln.get_label()).startswith(f"LoRA r={rank} capacity")]
        assert set(found.get_ydata()) == {2.0 * params}
    (marker,) = [ln for ln in ax.get_lines() if ln.get_marker() == "o" and ln.get_color() == "#0072B2"]
    assert marker.get_xdata()[0] == int(2 * 32 * 12_943_360 / h) == 339_754_925
    assert "full at 340M tokens" in "".join(str(ln.get_label()) for ln in ax.get_lines())
    assert_labelled(fig)


def test_breakeven_figure(llama: Estimate) -> None:
    from estimator.cost import breakeven
    from estimator.plots.beyond import breakeven_queries

    fig = breakeven_queries(llama)
    ax = fig.axes[0]
    result = breakeven(llama)
    q, icl = line(ax, "in context, every query")
    assert q[0] == 1 and q[-1] >= 10 * 51
    assert icl.tolist() == [n * result.in_context_query_flops for n in q]
    _, tuned = line(ax, "LoRA r=32, trained once (1 epoch)")
    assert tuned.tolist() == [result.finetune_once_flops + n * result.fine_tuned_query_flops for n in q]
    words = texts(fig)
    assert "2 queries" in words and "51 queries" in words
    # the ~1,000 exposures behind 2 bits per parameter: 1,000 epochs, the same FLOPs per query
    many = breakeven(llama, epochs=1_000)
    assert many.finetune_once_flops == 1_000 * result.finetune_once_flops
    _, tuned_many = line(ax, "LoRA r=32, trained once (1,000 epochs)")
    assert tuned_many.tolist() == [many.finetune_once_flops + n * many.fine_tuned_query_flops for n in q]
    assert q[-1] >= 10 * (many.queries_prefix_cached or 0) and f"{many.queries:,} queries" in words
    dots = [(ln.get_xdata()[0], ln.get_ydata()[0]) for ln in ax.get_lines() if ln.get_marker() == "o"]
    for n, y in dots:  # every dot sits where a fine-tuned curve meets an in-context one
        n = int(n)
        tuned_at = {r.finetune_once_flops + n * r.fine_tuned_query_flops for r in (result, many)}
        assert y in tuned_at
        run = result if y == result.finetune_once_flops + n * result.fine_tuned_query_flops else many
        assert n in (run.queries, run.queries_prefix_cached)
    assert len(dots) == 4
    assert_labelled(fig)


def test_models_figure_names_what_it_left_out() -> None:
    est = estimate(load_spec("llama3-8b"), 100_000, 16, "qv")
    fig = models_kv_vs_lora(est)
    names = [label.get_text() for label in fig.axes[1].get_yticklabels()]
    assert "Phi-3 mini (4k)" not in names and "Llama 3 8B" in names
    caption = " ".join(fig.texts[-1].get_text().split())  # unwrapped
    assert "Left out (targets do not apply): " in caption
    assert "Phi-3 mini (4k)" in caption and "GPT-2 (124M)" in caption

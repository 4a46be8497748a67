"""Figures: one function per figure, each taking an :class:`~estimator.compare.Estimate` (the query:
model, tokens, rank, targets, dtypes) and returning a matplotlib ``Figure``; :func:`write_figures`
regenerates them all (``estimate figures``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from estimator.compare import Estimate
from estimator.plots.beyond import breakeven_queries, capacity_vs_tokens
from estimator.plots.frontier import kv_frontier
from estimator.plots.heatmap import ratio_heatmap
from estimator.plots.kinds import cache_by_architecture
from estimator.plots.memory import memory_vs_context
from estimator.plots.models import models_kv_vs_lora
from estimator.plots.rank import bytes_per_token_vs_rank
from estimator.plots.style import FORMATS, save
from estimator.plots.tokens import bytes_per_token_vs_tokens
from estimator.plots.tuners import tuners_bytes_per_token

FIGURES: dict[str, Callable[[Estimate], Figure]] = {
    "bytes_per_token_vs_tokens": bytes_per_token_vs_tokens,
    "bytes_per_token_vs_rank": bytes_per_token_vs_rank,
    "models_kv_vs_lora": models_kv_vs_lora,
    "ratio_heatmap": ratio_heatmap,
    "capacity_vs_tokens": capacity_vs_tokens,
    "breakeven_queries": breakeven_queries,
    "cache_by_architecture": cache_by_architecture,
    "memory_vs_context": memory_vs_context,
    "kv_frontier": kv_frontier,
    "tuners_bytes_per_token": tuners_bytes_per_token,
}
KINDS = {  # `estimate plot KIND`
    "tokens": "bytes_per_token_vs_tokens",
    "rank": "bytes_per_token_vs_rank",
    "models": "models_kv_vs_lora",
    "heatmap": "ratio_heatmap",
    "capacity": "capacity_vs_tokens",
    "breakeven": "breakeven_queries",
    "architectures": "cache_by_architecture",
    "memory": "memory_vs_context",
    "frontier": "kv_frontier",
    "tuners": "tuners_bytes_per_token",
}
MANIFEST = "manifest.json"


def write_figures(
    est: Estimate, out: Path, formats: Sequence[str] = ("png", "svg"), *, title: bool = True, caption: bool = True
) -> list[Path]:
    """Every figure of :data:`FIGURES` for ``est`` as ``out/<name>.<format>``, and ``out/manifest.json``
    (the query, the matplotlib version that drew them, each file's SHA-256, and the figures that do not
    apply to the query with why); ``title`` and ``caption`` False leave those off. A figure that does not
    apply is skipped, never the rest: the manifest is written for what was made."""
    return draw_figures(est, out, formats, title=title, caption=caption)[0]


def draw_figures(
    est: Estimate, out: Path, formats: Sequence[str] = ("png", "svg"), *, title: bool = True, caption: bool = True
) -> tuple[list[Path], dict[str, str]]:
    """:func:`write_figures`, and the figures skipped: {name: why}."""
    from estimator.errors import EstimatorError
    from estimator.plots.style import plain

    paths: list[Path] = []
    skipped: dict[str, str] = {}
    for name, draw in FIGURES.items():
        try:
            fig = draw(est)
        except EstimatorError as exc:  # e.g. a model that splits over no number of GPUs: say why, draw the rest
            skipped[name] = str(exc)
            continue
        paths += save(plain(fig, title=title, caption=caption), out / name, formats)
    manifest: dict[str, Any] = {
        "model": est.spec.name,
        "tokens": est.tokens,
        "rank": est.rank,
        "targets": est.targets.label,
        "kv_dtype": est.kv.dtype.value,
        "adapter_dtype": est.adapter_dtype.value,
        "matplotlib": matplotlib.__version__,
        "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths},
    }
    if skipped:
        manifest["skipped"] = skipped
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return [*paths, manifest_path], skipped


__all__ = [
    "FIGURES",
    "FORMATS",
    "KINDS",
    "breakeven_queries",
    "bytes_per_token_vs_rank",
    "bytes_per_token_vs_tokens",
    "cache_by_architecture",
    "capacity_vs_tokens",
    "draw_figures",
    "kv_frontier",
    "models_kv_vs_lora",
    "ratio_heatmap",
    "save",
    "write_figures",
]

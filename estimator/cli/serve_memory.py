"""``estimate serve-memory``: what a serving engine leaves for the KV cache on each GPU, row by row as the
engine prints it (budget, weights, each reserve, the pool, blocks, tokens, concurrency), and the verdict for
batches of sequences at --tokens: fits or not, headroom, most sequences, longest context."""

from __future__ import annotations

from typing import Any

from estimator.cli.app import app
from estimator.cli.options import query_command
from estimator.cli.output import emit, with_format
from estimator.present.report import Format
from estimator.query.commands import SERVE_MEMORY


@app.command("serve-memory")
@query_command(command=SERVE_MEMORY, build=False)
@with_format
def serve_memory_command(
    *,
    fmt: Format,
    options: Any,
    settings: dict[str, Any],
) -> None:
    """What the engine leaves for the KV cache on each GPU, row by row as it prints it, and whether batches of
    --tokens fit: headroom, the most sequences and the longest context (the model's context window a hard limit)."""
    from estimator.present.serving_answer import build_report
    from estimator.query.options import DEFAULT_MODEL, build_query

    emit(build_report(build_query(options, DEFAULT_MODEL), settings, options["config"]), fmt)

"""The serving answer in words, tables and records: the engine's pool row by row, then the verdict per
(TP size, batch), then the assumptions. Sizes in GiB (2^30 bytes) as the engines print them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from estimator.present.report import BLANK, Text, markdown_table, pre, text_markdown
from estimator.present.tables import format_table
from estimator.units import format_bytes

if TYPE_CHECKING:
    from estimator.memory.engines import Pool
    from estimator.memory.verdict import Verdict
    from estimator.specs import ModelSpec

GiB = 2**30


def gib(n: int) -> str:
    return f"{n / GiB:,.2f}"


@dataclass(frozen=True, kw_only=True)
class ServingReport:
    """Everything ``estimate serve-memory`` answers, gathered before it is printed."""

    spec: ModelSpec
    tokens: int
    device: str  # the accelerator's name, or "(--memory)"
    device_words: str
    weights_words: str
    tps: tuple[int, ...]
    pools: tuple[Pool, ...]  # one per TP size
    verdicts: tuple[Verdict, ...]  # one per (TP size, batch)
    offload_tokens: tuple[int, ...]  # CPU-tier tokens per TP size (0: off)
    assumptions: tuple[str, ...]
    params: int = 0  # parameters of the part counted (--part)
    part: str = "language"  # --part: "language" (a multimodal checkpoint's language model) or "all"
    part_words: str = ""  # the first line's words on the part (estimator.present.words.query_part_words)
    part_counted: str = ""  # the same for the JSON (estimator.present.words.part_counted)
    fit_table: tuple[tuple[str, ...], ...] = ()  # --kv-method: each method's cache for each batch (header first)
    fit_records: tuple[dict[str, Any], ...] = ()

    def headline(self) -> str:
        engine = self.pools[0].engine.describe().split(":")[0]  # "vLLM 0.19 (V1 engine)"
        window = self.verdicts[0].context_window
        past = (
            f"; past the model's context window of {window:,} tokens, which the engine refuses"
            if window is not None and self.tokens > window
            else ""
        )
        name = self.spec.display_name
        return (
            f"{name} served by {engine}: {self.tokens:,} tokens per sequence on {self.device_words}{past}"
            f"{self.part_words}"
        )

    def pool_table(self) -> list[list[str]]:
        """The pool per GPU, row by row, one column per TP size (what the engine prints at start-up)."""
        head = ["KV pool per GPU, GiB", *(f"TP {tp}" for tp in self.tps)]
        first = self.pools[0]
        rows = [head]
        rows.append([f"budget: {first.knobs.memory_fraction:g} of the {gib(first.reported_bytes)} GiB torch reports",
                     *(gib(p.budget_bytes) for p in self.pools)])  # fmt: skip
        rows.append([f"weights ({self.weights_words})", *(gib(p.weights_bytes) for p in self.pools)])  # the format
        labels = dict.fromkeys(r.label.split(":")[0] for p in self.pools for r in p.reserves)
        for label in labels:
            cells = []
            for p in self.pools:
                hits = [r.bytes for r in p.reserves if r.label.split(":")[0] == label]
                cells.append(gib(hits[0]) if hits else "–")
            rows.append([label, *cells])
        rows.append(["KV pool", *(pool_words(p.pool_bytes) for p in self.pools)])
        if first.knobs.block_tokens > 1 and any(p.blocks is not None for p in self.pools):
            rows.append([f"GPU blocks of {max(1, first.knobs.block_tokens)} tokens",
                         *(f"{p.blocks:,}" if p.blocks is not None else "–" for p in self.pools)])  # fmt: skip
        rows.append(
            ["GPU KV cache size, tokens", *(f"{p.tokens:,}" if p.tokens is not None else "–" for p in self.pools)]
        )
        concurrency = (f"{p.max_concurrency:,.2f}x" if p.max_concurrency is not None else "–" for p in self.pools)
        rows.append([f"maximum concurrency at {first.knobs.max_model_len:,} tokens", *concurrency])
        if any(self.offload_tokens):
            rows.append(["CPU tier (--kv-offload), tokens", *(f"{t:,}" for t in self.offload_tokens)])
        return rows

    def verdict_table(self) -> list[list[str]]:
        head = ["TP", "batch", "cache", "KV pool", "fits", "headroom or short by", "most seqs", "longest context"]
        rows = [head]
        for v in self.verdicts:
            if v.longest_tokens is None:
                longest = "any length"
            elif v.longest_tokens == 0:
                longest = "none"
            else:
                longest = f"{v.longest_tokens:,}"
                if v.context_window is not None and v.longest_tokens == v.context_window:
                    longest += " (context window)"
            fits = "no (past context)" if v.past_context else "yes" if v.fits else "no"
            room = gib(v.headroom_bytes) if v.fits else f"short by {gib(v.short_bytes)}"
            pool = gib(v.pool.pool_bytes) if v.pool.pool_bytes >= 0 else "none"
            rows.append([str(v.tp), str(v.batch), gib(v.cache_bytes), pool, fits,
                         "–" if v.past_context else room, f"{v.most_sequences:,}", longest])  # fmt: skip
        return rows

    def record(self) -> dict[str, Any]:
        """The JSON: bytes in every size key, the pool row by row, the verdicts."""
        return {
            "model": self.spec.name,
            "params": self.params,
            "part": self.part,
            "part_counted": self.part_counted,
            "tokens": self.tokens,
            "context_window_tokens": self.verdicts[0].context_window,
            "device": self.device,
            "engine": self.pools[0].engine.value,
            "pools": [
                pool_record(tp, p, t) for tp, p, t in zip(self.tps, self.pools, self.offload_tokens, strict=True)
            ],
            "rows": [verdict_record(v) for v in self.verdicts],
            "assumptions": list(self.assumptions),
            **({"kv_methods": list(self.fit_records)} if self.fit_records else {}),
        }

    def rows(self) -> list[list[object]]:
        """CSV: one row per (TP size, batch), the verdict's record (bytes per GPU)."""
        records = [{"model": self.spec.name, "tokens": self.tokens, **verdict_record(v)} for v in self.verdicts]
        return [list(records[0]), *(list(r.values()) for r in records)]

    def _tables(self) -> list[tuple[str | None, list[list[str]], int]]:
        """(caption, rows with the header first, columns aligned left) of each table, in order."""
        tables: list[tuple[str | None, list[list[str]], int]] = [
            (None, self.pool_table(), 1),
            ("per GPU, GiB (2^30 bytes)", self.verdict_table(), 2),
        ]
        if self.fit_table:
            tables.append((None, [list(r) for r in self.fit_table], 1))
        return tables

    def text(self) -> list[Text]:
        blocks = [pre(self.headline()), BLANK]
        for caption, rows, left in self._tables():
            blocks += [
                *([pre(caption)] if caption else []),
                pre(format_table(rows[0], rows[1:], right=set(range(left, len(rows[0]))))),
                BLANK,
            ]
        return [*blocks, *(Text(line, bullet="- ") for line in self.assumptions)]

    def markdown(self) -> str:
        blocks = [Text(self.headline())]
        for caption, rows, left in self._tables():
            blocks += [*([Text(caption)] if caption else []), Text(markdown_table(rows, right_from=left))]
        return text_markdown([*blocks, *(Text(line, bullet="- ") for line in self.assumptions)])


def pool_words(pool_bytes: int) -> str:
    """The pool in GiB, or what the engine lacks to start ("none, short by 62.36") where nothing is left."""
    return gib(pool_bytes) if pool_bytes >= 0 else f"none, short by {gib(-pool_bytes)}"


def pool_record(tp: int, pool: Pool, offload: int) -> dict[str, Any]:
    k = pool.knobs
    return {
        "tensor_parallel": tp,
        "reported_memory_bytes": pool.reported_bytes,
        "memory_fraction": k.memory_fraction,
        "budget_bytes": pool.budget_bytes,
        "weights_bytes": pool.weights_bytes,
        "reserves": [{"label": r.label, "bytes": r.bytes, "source": r.source} for r in pool.reserves],
        "kv_pool_bytes": max(0, pool.pool_bytes),
        "pool_shortfall_bytes": max(0, -pool.pool_bytes),  # what the engine lacks to start (0: it starts)
        "engine_starts": pool.pool_bytes > 0,
        "block_tokens": k.block_tokens,
        "gpu_blocks": pool.blocks,
        "kv_cache_tokens": pool.tokens,
        "max_model_len_tokens": k.max_model_len,
        "max_concurrency": pool.max_concurrency,
        "max_num_seqs": k.max_num_seqs,
        "max_num_batched_tokens": k.max_num_batched_tokens,
        "cpu_tier_tokens": offload,
    }


def verdict_record(v: Verdict) -> dict[str, Any]:
    return {
        "tensor_parallel": v.tp,
        "batch": v.batch,
        "cache_bytes_per_gpu": v.cache_bytes,
        "sequence_bytes_per_gpu": v.sequence_bytes,
        "kv_pool_bytes_per_gpu": max(0, v.pool.pool_bytes),
        "fits": v.fits,
        "past_context_window": v.past_context,
        "headroom_bytes": v.headroom_bytes,
        "short_bytes": v.short_bytes,
        "most_sequences": v.most_sequences,
        "longest_tokens": v.longest_tokens,
        "any_length": v.longest_tokens is None,
    }


def memory_words(capacity: int, reported: bool, name: str) -> str:
    """'NVIDIA H100 SXM5 80GB (torch reports 79.19 GiB)' or '24.00 GiB (--memory)'."""
    if name == "(--memory)":
        return f"{format_bytes(capacity, iec=True)} (--memory)"
    return f"{name} ({'torch reports' if reported else 'installed, no reported size known:'} {gib(capacity)} GiB)"

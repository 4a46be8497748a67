"""Tables and CSV rows of an :class:`~estimator.compare.Estimate`, and the formatting they share.

Hand-rolled columns on purpose: a table library costs the plain query ~50 ms of start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from estimator.query.vocabulary import Method
from estimator.stores import STORES
from estimator.units import format_bytes, format_number

if TYPE_CHECKING:
    from estimator.compare import Estimate


def method_label(est: Estimate, method: Method) -> str:
    """The table's name for a row: its store's label for the query."""
    return STORES[method].label(est.query)


def format_table(headers: list[str], body: list[list[str]], right: set[int]) -> str:
    """Plain aligned columns (two spaces apart); columns in ``right`` are right-aligned."""
    widths = [max(len(line[i]) for line in [headers, *body]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        return "  ".join(padded).rstrip()

    return "\n".join(line(cells) for cells in [headers, *body])


def format_ratio(ratio: float) -> str:
    """``39.6x`` below 100, whole numbers with separators above, two significant figures below 0.1."""
    if ratio < 0.1:
        return f"{ratio:.2g}x"
    return f"{ratio:.1f}x" if ratio < 100 else f"{ratio:,.0f}x"


TABLE_HEADERS = ["stored as", "parameters", "bytes", "size (SI)", "bytes / token", "KV ÷ this"]


def table_rows(est: Estimate) -> list[tuple[str, list[str]]]:
    """The headline table's rows as (the method's name, or "" for a part of the row above, its cells): the one
    body the CLI prints and the page shows."""
    rows: list[tuple[str, list[str]]] = []
    holds = est.holds_all_tokens  # a cache that keeps only the last w tokens has no rate per token of the text
    for row in est.rows:
        is_kv = row.method is Method.kv
        rows.append(
            (
                row.method.value,
                [
                    method_label(est, row.method),
                    "—" if row.params is None else f"{row.params:,}",
                    f"{row.bytes:,}",
                    format_bytes(row.bytes),
                    format_number(row.bytes_per_token) if holds or not is_kv else "—",
                    format_ratio(row.kv_to_this_bytes_ratio) if holds else "—",
                ],
            )
        )
        if is_kv and est.kv_state_bytes and est.kv_growing_bytes:  # the two parts apart
            for name, size in (("  of which the KV cache (grows)", est.kv_growing_bytes),
                               ("  of which the fixed state", est.kv_state_bytes)):  # fmt: skip
                rows.append(("", [name, "—", f"{size:,}", format_bytes(size), format_number(size / est.tokens), ""]))
        if is_kv:  # --kv-method: the shrunk caches beside the plain one
            rows.extend(("", cells) for cells in kv_method_rows(est))
    return rows


def estimate_table(est: Estimate) -> str:
    """The headline table: one row per way of storing the text."""
    return format_table(TABLE_HEADERS, [cells for _, cells in table_rows(est)], right={1, 2, 3, 4, 5})


def csv_rows(est: Estimate) -> list[list[object]]:
    """Header and one row per method, raw numbers."""
    header: list[object] = [
        "mechanism",
        "method",
        "params",
        "bytes",
        "bytes_per_token",
        "kv_to_this_bytes_ratio",
        "tokens",
    ]
    holds = est.holds_all_tokens
    body: list[list[object]] = [
        [method_label(est, r.method), r.method.value, "" if r.params is None else r.params, r.bytes,
         r.bytes_per_token if holds or r.method is not Method.kv else "", r.kv_to_this_bytes_ratio if holds else "",
         est.tokens]
        for r in est.rows
    ]  # fmt: skip
    return [header, *body, *kv_method_csv_rows(est)]


def kv_method_rows(est: Estimate) -> list[list[str]]:
    """One table row per method (the headline table's columns), with its fixed part apart where it has both."""
    body = []
    for row in est.kv_method_rows:
        rate = est.holds_all_tokens or not row.growing_bytes  # as the cache's row: no rate of a window's last tokens
        body.append(
            [
                row.label,
                "—",
                f"{row.bytes:,}",
                format_bytes(row.bytes),
                format_number(row.bytes_per_token) if rate else "—",
                format_ratio(row.kv_to_this_bytes_ratio) if est.holds_all_tokens else "—",
            ]
        )
        if row.fixed_bytes and row.growing_bytes:
            for name, size in (("  of which grows", row.growing_bytes), ("  of which fixed", row.fixed_bytes)):
                body.append([name, "—", f"{size:,}", format_bytes(size), format_number(size / est.tokens), ""])
    return body


def kv_method_csv_rows(est: Estimate) -> list[list[object]]:
    """CSV rows in the headline's columns (mechanism, method, params, bytes, bytes_per_token,
    kv_to_this_bytes_ratio, tokens)."""
    return [
        [row.label, row.method.text, "", row.bytes, row.bytes_per_token, row.kv_to_this_bytes_ratio, est.tokens]
        for row in est.kv_method_rows
    ]

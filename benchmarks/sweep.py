"""Time a vectorised sweep: 1,000 token counts × 1,000 ranks (10^6 points), best of several runs.

    python benchmarks/sweep.py [--model llama3-70b] [--runs 7]

Prints the time to compute the grids (KV bytes, LoRA bytes, ratio, parity rank), to build the
long table of all 10^6 rows (columns, then a pandas DataFrame), and the same for a model with
sliding windows (Gemma 3 27B). Target: well under a second for the grid.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from functools import partial

from estimator.compare import Estimate, estimate
from estimator.sweep import sweep
from estimator.units import parse_grid
from estimator.zoo import load_spec


def best_ms(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


def grids(base: Estimate, tokens: Sequence[int], ranks: Sequence[int]) -> object:
    data = sweep(base, tokens, ranks)
    return data.kv_cache_bytes, data.lora_bytes, data.kv_to_lora_bytes_ratio, data.parity_rank


def table(base: Estimate, tokens: Sequence[int], ranks: Sequence[int]) -> object:
    return sweep(base, tokens, ranks).columns()


def frame(base: Estimate, tokens: Sequence[int], ranks: Sequence[int]) -> object:
    return sweep(base, tokens, ranks).to_frame()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    tokens = parse_grid("1k:1T:lin1000")
    ranks = list(range(1, 1001))
    for name in ("llama3-70b", "gemma3-27b"):
        base = estimate(load_spec(name), 100_000, 32)
        data = sweep(base, tokens, ranks)
        timings = {
            "grids (KV, LoRA, ratio, parity)": partial(grids, base, tokens, ranks),
            f"long table, {len(data.columns())} columns": partial(table, base, tokens, ranks),
            "pandas DataFrame": partial(frame, base, tokens, ranks),
        }
        print(f"{name}: {data.kv_to_lora_bytes_ratio.size:,} points")
        for label, work in timings.items():
            print(f"  {label:34} {best_ms(work, args.runs):8.1f} ms")


if __name__ == "__main__":
    main()

"""The deployment a break-even is timed on: t GPUs in tensor parallel serving a batch of B queries, chosen as
`estimate serve-memory` plans vLLM's pool (by default the smallest t of 1, 2, 4, 8 whose pool holds the batch).

Per GPU, vLLM 0.19's pool is its budget of the memory torch reports less the weights' shard and its reserves
(:func:`estimator.memory.engine_rules.plan_pool`); one sequence of the in-context query (T + q + g tokens)
takes its paged blocks on the GPU's own KV heads (:func:`estimator.memory.verdict.verdict`). The batch fits
where B · sequence ≤ pool. Llama 3 70B, bf16, 100,000 + 200 tokens on H100 SXM (79.19 GiB reported):
t = 1 and 2 leave no room for one sequence, t = 4 does.

For time, the t GPUs act as one roofline of t times the peak FLOP/s and bandwidth: ideal tensor parallelism,
no communication, a lower bound like the rest of :mod:`estimator.timing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from estimator.errors import EstimatorError

if TYPE_CHECKING:
    from estimator.accelerators import Accelerator
    from estimator.compare import Estimate

TP_SIZES = (1, 2, 4, 8)  # tensor-parallel sizes tried, as the memory figure tries them
BEYOND_ONE_NODE = (16, 32, 64)  # named in the refusal where none of TP_SIZES holds the batch
MAX_GPUS = 1_024
MAX_BATCH = 1_000_000


@dataclass(frozen=True)
class Deployment:
    """``gpus`` accelerators in tensor parallel serving ``batch`` queries at once, and the pool that holds them."""

    device: Accelerator
    gpus: int
    batch: int
    sequence_tokens: int  # T + q + g: one in-context query's cache
    pool_bytes: int  # per GPU, as vLLM plans it
    sequence_bytes: int  # per GPU, one sequence of sequence_tokens
    chosen: bool  # True: the smallest of TP_SIZES that holds the batch; False: given (--tp)

    @property
    def fits(self) -> bool:
        """B · sequence ≤ pool on every GPU (the context window aside: the main query warns of it)."""
        return self.pool_bytes > 0 and self.batch * self.sequence_bytes <= self.pool_bytes

    @property
    def most_sequences(self) -> int:
        """⌊pool / sequence⌋: in-context queries the pool holds at once."""
        return max(0, self.pool_bytes) // self.sequence_bytes if self.sequence_bytes else 0

    @property
    def bf16_dense_flops_per_s(self) -> int:
        """t · peak: the GPUs as one roofline (ideal tensor parallelism)."""
        return self.gpus * self.device.bf16_dense_flops_per_s

    @property
    def memory_bandwidth_bytes_per_s(self) -> int:
        return self.gpus * self.device.memory_bandwidth_bytes_per_s

    @property
    def name(self) -> str:
        return self.device.name

    @property
    def display_name(self) -> str:
        """``4 × H100 SXM 80GB`` (``1 × ...`` for one)."""
        return f"{self.gpus} × {self.device.display_name}"

    @property
    def source(self) -> str:
        return self.device.source

    def words(self) -> str:
        """How it was chosen, for the first line of `estimate breakeven`."""
        gb = 2**30
        held = (
            f"its vLLM pool, {self.pool_bytes / gb:,.2f} GiB per GPU, holds {self.most_sequences:,} in-context "
            f"quer{'y' if self.most_sequences == 1 else 'ies'} of {self.sequence_tokens:,} tokens "
            f"({self.sequence_bytes / gb:,.2f} GiB each)"
        )
        how = f"the smallest of {', '.join(map(str, TP_SIZES))} GPUs that holds the batch" if self.chosen else "--tp"
        parallel = " in tensor parallel" if self.gpus > 1 else ""
        return f"served on {self.display_name}{parallel} ({how}; {held}), batch {self.batch:,}"


def plan(est: Estimate, device: Accelerator, gpus: int, batch: int, sequence_tokens: int, chosen: bool) -> Deployment:
    """vLLM's pool on ``gpus`` GPUs for ``est``'s model, weights and cache format, and one sequence's bytes."""
    from estimator.memory.engine_rules import default_knobs, plan_pool
    from estimator.memory.engines import Engine
    from estimator.memory.formats import WeightFormat
    from estimator.memory.serving import ServeSetup
    from estimator.memory.verdict import verdict
    from estimator.query import choice
    from estimator.units import MAX_COUNT

    weights = choice(est.weights_dtype.value, WeightFormat, "--weights-dtype")
    setup = ServeSetup(weights=weights, kv=est.kv, tp=gpus)
    reported = device.usable_memory_bytes
    knobs = default_knobs(Engine.vllm, reported, device.display_name, sequence_tokens, gpus)
    pool = plan_pool(est.spec, setup, Engine.vllm, knobs, reported)
    judged = verdict(est.spec, setup, pool, sequence_tokens, batch, MAX_COUNT)
    return Deployment(device, gpus, batch, sequence_tokens, pool.pool_bytes, judged.sequence_bytes, chosen)


def deployment(
    est: Estimate, device: Accelerator, batch: int, sequence_tokens: int, gpus: int | None = None
) -> Deployment:
    """The deployment given (``gpus``), or the smallest of :data:`TP_SIZES` whose pool holds ``batch``
    in-context queries of ``sequence_tokens``; one line naming the fix where none does."""
    if isinstance(batch, bool) or not 1 <= batch <= MAX_BATCH:
        raise EstimatorError(f"--batch {batch} must be from 1 to {MAX_BATCH:,}; give e.g. 1 or 8")
    if gpus is not None:
        if isinstance(gpus, bool) or not 1 <= gpus <= MAX_GPUS:
            raise EstimatorError(f"--tp {gpus} must be from 1 to {MAX_GPUS:,}; give e.g. 4")
        given = plan(est, device, gpus, batch, sequence_tokens, chosen=False)
        if not given.fits:
            pool = (
                f"vLLM's pool is {given.pool_bytes / 2**30:,.2f} GiB per GPU"
                if given.pool_bytes > 0
                else f"the weights and vLLM's reserves exceed its budget by {-given.pool_bytes / 2**30:,.2f} GiB a GPU"
            )
            raise EstimatorError(
                f"{est.spec.display_name} does not fit {batch:,} in-context quer{'y' if batch == 1 else 'ies'} of "
                f"{sequence_tokens:,} tokens on {given.display_name}: {pool}, the batch needs "
                f"{batch * given.sequence_bytes / 2**30:,.2f} GiB; give more --tp or a smaller --batch, or leave --tp "
                "out for the smallest that fits"
            )
        return given
    for size in TP_SIZES:
        try:
            candidate = plan(est, device, size, batch, sequence_tokens, chosen=True)
        except EstimatorError:  # a size the model's heads do not split over
            continue
        if candidate.fits:
            return candidate
    larger = next((size for size in BEYOND_ONE_NODE if _holds(est, device, size, batch, sequence_tokens)), None)
    fix = f"give --tp {larger} (across nodes)" if larger is not None else "give --tp"
    raise EstimatorError(
        f"{est.spec.display_name} fits {batch:,} in-context quer{'y' if batch == 1 else 'ies'} of {sequence_tokens:,} "
        f"tokens on none of {', '.join(map(str, TP_SIZES))} × {device.display_name}; {fix}, a smaller --batch, "
        "--weights-dtype fp8 or a larger --accelerator"
    )


def _holds(est: Estimate, device: Accelerator, gpus: int, batch: int, sequence_tokens: int) -> bool:
    try:
        return plan(est, device, gpus, batch, sequence_tokens, chosen=False).fits
    except EstimatorError:
        return False

"""The computing off the event loop: a small pool of threads, a bound on the requests waiting for it, and a time
limit on each. A request beyond the bound, or one that runs past its limit, is answered 503 at once; the
event loop keeps answering every other request (a 2 ms query does not wait behind twelve sweeps).

A thread cannot be stopped, so a request past its limit is answered while its thread runs on; it keeps its
place in the bound until it ends, so the work in flight never exceeds ``workers + waiting`` requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from estimator.errors import EstimatorError

T = TypeVar("T")
WORKERS = 4  # the numbers are cheap (a 20,000-point sweep: under 0.5 s); more threads only share one GIL
WAITING = 256  # requests queued behind them (a parsed query each, a few kB) before the server answers 503
SECONDS = 20.0  # the most one request may compute


class RefusedError(EstimatorError):
    """A request the server turns away with ``status`` (413, 415, 503, ...) and the usual one line."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Pool:
    """A bounded thread pool for the app's computing (see the module docstring)."""

    def __init__(self, workers: int = WORKERS, waiting: int = WAITING, seconds: float = SECONDS) -> None:
        self.workers, self.bound, self.seconds = workers, workers + waiting, seconds
        self.executor: ThreadPoolExecutor | None = None
        self.in_flight = 0

    def _done(self, _: Any) -> None:
        self.in_flight -= 1

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` on a pool thread; 503 when the bound is reached or the time limit passes."""
        if self.in_flight >= self.bound:
            raise RefusedError(f"the server is busy ({self.in_flight} requests computing); try again in a moment", 503)
        if self.executor is None:
            self.executor = ThreadPoolExecutor(self.workers, thread_name_prefix="estimator-web")
        self.in_flight += 1
        future = asyncio.get_running_loop().run_in_executor(self.executor, work, *args)
        future.add_done_callback(self._done)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.seconds)
        except TimeoutError:
            raise RefusedError(f"the request took over {self.seconds:g} s; ask for fewer points", 503) from None

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = None

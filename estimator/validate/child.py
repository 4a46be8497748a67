"""The bounded child process that measures a model from transformers: ``python -m estimator.validate.unknown``,
a JSON request on stdin, a JSON answer on stdout, under a time and an address-space limit, offline. A crash
inside torch (a signal), a limit reached or an error is one line here, never a dead parent process.

This module imports neither torch nor transformers: the child does.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from estimator.errors import EstimatorError

MEASURE_SECONDS = 300  # a model of DeepSeek-V3's size builds and measures on the meta device in under a minute
MEASURE_MEMORY_BYTES = 8 * 2**30  # address space of the child: torch and a large meta model take ~2 GiB
CHILD_COMMAND = ("-m", "estimator.validate.unknown")  # the child: python with these arguments


def _limit_child() -> None:  # pragma: no cover - runs in the child, between fork and exec
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEASURE_MEMORY_BYTES, MEASURE_MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def whole_params_in_child(config: dict[str, Any]) -> tuple[int, str]:
    """(parameters, class) of a whole multimodal checkpoint, measured on the meta device in the bounded child
    (:func:`estimator.validate.unknown.whole_model_params_measured`)."""
    answer = run_child(
        {"kind": "whole_params", "model_type": config.get("model_type"), "config": config}, "whole_params"
    )
    return int(answer[0]), str(answer[1])


def measure_in_child(request: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`estimator.validate.unknown.measure_unknown` in a child process under a time and a memory
    limit, offline; its result as JSON (:func:`estimator.validate.unknown.measured_from` reads it), or one line
    saying why there is none (torch's own log is never shown)."""
    answer: dict[str, Any] = run_child(request, "measured")
    return answer


def run_child(request: dict[str, Any], key: str) -> Any:
    """The child's answer under ``key`` to ``request``, or one line saying why there is none."""
    import os
    import subprocess

    from estimator.checkpoint.files import printable
    from estimator.offline import OFFLINE_ENV

    what = f"measuring model_type {request['model_type']!r} from transformers"
    try:
        done = subprocess.run(
            [sys.executable, *CHILD_COMMAND], input=json.dumps(request), capture_output=True,
            text=True, timeout=MEASURE_SECONDS, env={**os.environ, **OFFLINE_ENV},
            preexec_fn=_limit_child if os.name == "posix" else None,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise EstimatorError(f"{what} took over {MEASURE_SECONDS} s and was stopped; pass a smaller config") from None
    try:
        answer = json.loads(done.stdout) if done.returncode == 0 else None
    except ValueError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        raise EstimatorError(answer["error"])
    if not isinstance(answer, dict) or answer.get(key) is None:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        why = printable(lines[-1], 200) if lines else f"exit status {done.returncode}"
        if done.returncode < 0:
            import signal

            try:
                why = f"killed by signal {signal.Signals(-done.returncode).name}"
            except ValueError:
                why = f"killed by signal {-done.returncode}"
            if done.returncode != -signal.SIGKILL:  # a crash inside torch or transformers, not a limit
                raise EstimatorError(f"{what} crashed its child process ({why}); nothing is measured for it")
        if "MemoryError" in done.stderr or "std::bad_alloc" in done.stderr or done.returncode == -9:
            why = f"it needed more than the {MEASURE_MEMORY_BYTES / 2**30:.0f} GiB it may use"
        limits = f"{MEASURE_MEMORY_BYTES / 2**30:.1f} GiB and {MEASURE_SECONDS} s"
        raise EstimatorError(f"{what} failed in its child process ({why}; it may use {limits}); pass a smaller config")
    return answer[key]

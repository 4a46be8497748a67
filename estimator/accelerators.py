"""Accelerators (GPUs, TPUs): peak dense FLOP/s, memory bandwidth and memory per device, for roofline time
per token and for what fits on one device. Every number is the vendor's own, from ``estimator/data/
accelerators.toml``, whose entries carry the page they came from (``source``) and its words (``note``).

Units. FLOP/s and bytes/s are decimal, as the vendors print them: "Matrix BF16 ... 1307.4" TFLOPS is
1_307_400_000_000_000 FLOP/s and "5.3 TB per second" is 5_300_000_000_000 bytes/s. Dense only: where a
vendor quotes FLOP/s "with sparsity" alone, the entry stores half of it and its note says so.

Memory. ``memory_gb_as_printed`` keeps the vendor's capacity number and ``memory_bytes`` is that number
x 2**30: DRAM (HBM, GDDR) comes in binary sizes, and AMD's own table prints the MI300X as "VRAM (GiB)
192", so ``memory_bytes`` = 192 x 2**30 = 206_158_430_208. This is the installed capacity; what a
framework can allocate is a little less (firmware, ECC, the runtime's own reserve).

>>> mi300x = accelerator("mi300x")
>>> round(mi300x.ridge_flops_per_byte, 1)  # 1307.4e12 / 5.3e12: below ~247 FLOP per byte, memory-bound
246.7
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from estimator.errors import EstimatorError

DATA_FILE = "data/accelerators.toml"  # inside the estimator package
NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")  # what a user types: h100-sxm, tpu-v5e
INTEGERS = ("bf16_dense_flops_per_s", "memory_bandwidth_bytes_per_s", "memory_bytes")
TEXTS = ("display_name", "source", "note")
OPTIONAL = ("fp8_dense_flops_per_s", "reported_memory_gib", "reported_memory_source")
REQUIRED = (*TEXTS, *INTEGERS, "memory_gb_as_printed")


@dataclass(frozen=True)
class Accelerator:
    """One device as its vendor specifies it: dense peaks, HBM/GDDR bandwidth and capacity, and the source."""

    name: str
    display_name: str
    bf16_dense_flops_per_s: int
    fp8_dense_flops_per_s: int | None
    memory_bandwidth_bytes_per_s: int
    memory_bytes: int
    source: str
    note: str
    reported_memory_gib: float | None = None  # what torch reports (mem_get_info's total), as an engine log prints it
    reported_memory_source: str | None = None

    @property
    def usable_memory_bytes(self) -> int:
        """The memory torch reports for the device (H100 80GB HBM3: 79.19 GiB, as vLLM prints it), which
        engines budget from; the installed size where no log of it was found (said by ``reported``)."""
        if self.reported_memory_gib is None:
            return self.memory_bytes
        return round(self.reported_memory_gib * 2**30)

    @property
    def reported(self) -> bool:
        return self.reported_memory_gib is not None

    @property
    def ridge_flops_per_byte(self) -> float:
        """Peak BF16 FLOP/s over memory bandwidth: the arithmetic intensity (FLOP per byte moved) at which a
        kernel stops being memory-bound. MI300X: 1307.4e12 / 5.3e12 ≈ 246.7; decoding one token with 16-bit
        weights does about 1 FLOP per byte read (2 FLOP per parameter over 2 bytes), so it is memory-bound."""
        return self.bf16_dense_flops_per_s / self.memory_bandwidth_bytes_per_s


def _positive(value: Any, integer: bool) -> bool:
    kinds = (int,) if integer else (int, float)
    return isinstance(value, kinds) and not isinstance(value, bool) and value > 0


def _entry(name: str, fields: Any, where: str) -> Accelerator:
    """Validate one table of the file; every error names the file and the entry, in one line."""

    def bad(problem: str) -> EstimatorError:
        return EstimatorError(f"{where}: [{name}] {problem}; fix the file")

    if not NAME.fullmatch(name):
        raise bad("is not a lowercase-hyphenated name such as tpu-v5e")
    if not isinstance(fields, dict):
        raise bad("is not a table of fields")
    if unknown := sorted(set(fields) - set(REQUIRED) - set(OPTIONAL)):
        raise bad(f"has unknown key(s) {', '.join(unknown)}; allowed: {', '.join((*REQUIRED, *OPTIONAL))}")
    if missing := [key for key in REQUIRED if key not in fields]:
        raise bad(f"lacks {', '.join(missing)}")
    for key in TEXTS:
        if not isinstance(fields[key], str) or not fields[key].strip():
            raise bad(f"{key} must be a non-empty string")
    if not fields["source"].startswith("https://"):
        raise bad(f"source {fields['source']!r} must be an https:// URL of the vendor's page")
    for key in (*INTEGERS, *(k for k in OPTIONAL[:1] if k in fields)):
        if not _positive(fields[key], integer=True):
            raise bad(f"{key} = {fields[key]!r} must be a positive integer")
    if not _positive(fields["memory_gb_as_printed"], integer=False):
        raise bad(f"memory_gb_as_printed = {fields['memory_gb_as_printed']!r} must be a positive number")
    if ("reported_memory_gib" in fields) != ("reported_memory_source" in fields):
        raise bad("reported_memory_gib and reported_memory_source come together (the log that printed it)")
    reported = fields.get("reported_memory_gib")
    if reported is not None and not (_positive(reported, integer=False) and reported <= fields["memory_gb_as_printed"]):
        raise bad(f"reported_memory_gib = {reported!r} must be positive and at most the installed memory")
    expected = round(fields["memory_gb_as_printed"] * 2**30)
    if fields["memory_bytes"] != expected:
        raise bad(f"memory_bytes = {fields['memory_bytes']} differs from memory_gb_as_printed x 2**30 = {expected}")
    return Accelerator(
        name=name,
        display_name=fields["display_name"],
        bf16_dense_flops_per_s=fields["bf16_dense_flops_per_s"],
        fp8_dense_flops_per_s=fields.get("fp8_dense_flops_per_s"),
        memory_bandwidth_bytes_per_s=fields["memory_bandwidth_bytes_per_s"],
        memory_bytes=fields["memory_bytes"],
        source=fields["source"],
        note=fields["note"],
        reported_memory_gib=reported,
        reported_memory_source=fields.get("reported_memory_source"),
    )


def _parse(text: str, where: str) -> tuple[Accelerator, ...]:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EstimatorError(f"{where}: not valid TOML ({exc}); fix the file") from None
    if not data:
        raise EstimatorError(f"{where}: names no accelerator; add a [name] table")
    return tuple(_entry(name, fields, where) for name, fields in sorted(data.items()))


def load_accelerators_from(path: Path) -> tuple[Accelerator, ...]:
    """Read and strictly validate an accelerators TOML file (the packaged one, or a user's)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EstimatorError(f"cannot read {path} ({exc}); check the path") from None
    return _parse(text, str(path))


@cache
def load_accelerators() -> tuple[Accelerator, ...]:
    """Every packaged accelerator, sorted by name; read once per process."""
    resource = files("estimator").joinpath(DATA_FILE)
    return _parse(resource.read_text(encoding="utf-8"), str(resource))


def accelerator_names() -> list[str]:
    """The names a user may give, sorted: mi300x, tpu-v5e, ..."""
    return [a.name for a in load_accelerators()]


def accelerator(name: str) -> Accelerator:
    """The packaged accelerator with this name (case-insensitive); an unknown name suggests close ones."""
    key = name.strip().lower()
    for device in load_accelerators():
        if device.name == key:
            return device
    import difflib

    names = accelerator_names()
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise EstimatorError(f"unknown accelerator {name!r}; {hint}use one of {', '.join(names)}")

"""Memory sizes as people type them: ``80GiB``, ``24 GB``, ``1.5GiB``, ``512MiB``, ``0``."""

from __future__ import annotations

import re
from fractions import Fraction

from estimator.errors import EstimatorError

UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
PATTERN = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*([a-z]*)\s*$", re.IGNORECASE)
MAX_BYTES = 2**60  # an exbibyte: beyond any device


def parse_bytes(text: str, what: str = "size") -> int:
    """Whole bytes from ``80GiB`` (85,899,345,920), ``24GB`` (24 · 10^9), ``1.5GiB`` or ``0``; decimal SI
    (GB = 10^9) and binary IEC (GiB = 2^30) units, any case, rounded down to a whole byte."""
    match = PATTERN.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in UNITS:
        raise EstimatorError(f"cannot read {what} {text!r}; write a size such as 80GiB, 24GB or 512MiB")
    value = int(Fraction(match.group(1)) * UNITS[unit])
    if value > MAX_BYTES:
        raise EstimatorError(f"{what} {text!r} is more than 1 EiB; give a device's size such as 80GiB")
    return value

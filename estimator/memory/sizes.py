"""Memory sizes as people type them: ``80GiB``, ``24 GB``, ``1.5GiB``, ``512MiB``, ``0``.

A size needs its unit: ``--memory 80`` could mean 80 bytes, 80 GB or 80 GiB, so it is refused with the fix.
GPUs are sold by binary size ("80 GB" H100: 80 GiB = 85,899,345,920 bytes), so ``24GB`` (24 · 10^9 bytes,
22.35 GiB) is read as written and the output states both units (:func:`both_units`)."""

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
    amount = Fraction(match.group(1))
    if not unit and amount != 0:
        raise EstimatorError(
            f"{what} {text.strip()} has no unit; write {match.group(1)}GiB (GPUs are sold in binary sizes: an "
            f"'80 GB' H100 holds 80 GiB) or {match.group(1)}GB (10^9 bytes)"
        )
    value = int(amount * UNITS[unit])
    if value > MAX_BYTES:
        raise EstimatorError(f"{what} {text!r} is more than 1 EiB; give a device's size such as 80GiB")
    return value


def both_units(size_bytes: int) -> str:
    """A size in SI and IEC units at once: 24 · 10^9 → '24.00 GB = 22.35 GiB'."""
    return f"{size_bytes / 10**9:,.2f} GB = {size_bytes / 2**30:,.2f} GiB"

"""The result types of validation: one :class:`Check` per quantity, a :class:`Validation` per model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from estimator.units import format_number

if TYPE_CHECKING:
    from estimator.specs import ModelSpec
    from estimator.validate import VersionReport

Status = Literal["ok", "differs", "explained"]


@dataclass(frozen=True)
class Check:
    """One quantity: our estimate, what torch measured, and whether they agree exactly."""

    quantity: str
    estimate: int | float | str
    measured: int | float | str
    status: Status
    note: str = ""

    @property
    def difference(self) -> str:
        if isinstance(self.estimate, str) or isinstance(self.measured, str):
            return "" if self.estimate == self.measured else "differs"
        return format_number(self.measured - self.estimate)


@dataclass(frozen=True)
class Validation:
    spec: ModelSpec
    checks: tuple[Check, ...]
    method: tuple[str, ...]
    seconds: float
    versions: VersionReport

    @property
    def ok(self) -> bool:
        return all(check.status != "differs" for check in self.checks)


def compare(quantity: str, estimate: int | float, measured: int | float, note: str = "") -> Check:
    """Equal or not: no tolerance."""
    return Check(quantity, estimate, measured, "ok" if estimate == measured else "differs", note)


def explained(quantity: str, estimate: int | float, measured: int | float, predicted: int | float, why: str) -> Check:
    """A stated difference: ✔* only when the measurement is exactly what the stated convention predicts."""
    return Check(quantity, estimate, measured, "explained" if measured == predicted else "differs", why)

"""Validation against real torch modules: transformers and peft measure what the formulas predict.

Needs the optional extra (``pip install torch==2.13.0 && pip install -e ".[validate]"``).
:mod:`estimator.validate.hf` (spec -> config dict, shrunken twins) imports no torch;
:mod:`estimator.validate.measure` and :mod:`estimator.validate.checks` do.

The measurements depend on the conventions of the installed torch, transformers and peft (which
tensors transformers keeps in float32, which expert tensors peft converts): the versions the test
suite passes with are pinned in ``test-lock.txt`` (refreshed by ``python scripts/relock.py``), and
:func:`version_report` says whether the installed ones are those.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from estimator.errors import EstimatorError
from estimator.offline import go_offline

EXTRA_PACKAGES = ("torch", "transformers", "peft", "safetensors", "bitsandbytes")
# bitsandbytes (imported by peft and by the memory checks) warns on import that an optional CPU kernel
# package is missing; its plain-torch CPU code runs instead and every byte counted is the same.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
go_offline()  # transformers, peft and bitsandbytes never reach the Hub or fetch a kernel (estimator.offline)
MEASURING_PACKAGES = ("torch", "transformers", "peft")  # their conventions decide the measured numbers
INSTALL_HINT = 'pip install torch==2.13.0 && pip install -e ".[validate]"'
LOCK_NAMES = ("_test_lock.txt", "test-lock.txt")  # in the wheel, beside the source tree
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


def require_extra() -> None:
    """One clear line when the validation extra is missing (never an ImportError traceback)."""
    missing = [name for name in EXTRA_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise EstimatorError(
            f"validation needs {', '.join(missing)}, which are not installed; install the extra: {INSTALL_HINT}"
        )


def lock_path() -> Path | None:
    """The test lock: packaged in the wheel, or ``test-lock.txt`` at the root of the source tree."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / LOCK_NAMES[0], here.parent / LOCK_NAMES[1]):
        if candidate.is_file():
            return candidate
    return None


def read_pins(text: str) -> dict[str, str]:
    """``name==version`` lines of a pip constraints file, names normalised (PEP 503), comments skipped."""
    pins = {}
    for line in text.splitlines():
        if match := _PIN.match(line):
            pins[normalise(match[1])] = match[2]
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def public(version: str) -> str:
    """The public part of a version: ``2.13.0+cpu`` -> ``2.13.0`` (a local build label is no other release)."""
    return version.split("+", 1)[0]


@dataclass(frozen=True)
class VersionReport:
    """The versions validation measured with, and those the test lock pins."""

    installed: dict[str, str | None]
    tested: dict[str, str]

    @property
    def outside(self) -> tuple[str, ...]:
        """Packages whose installed release is not the one the tests pass with."""
        return tuple(
            name
            for name, version in self.installed.items()
            if name in self.tested and (version is None or public(version) != public(self.tested[name]))
        )

    def line(self) -> str:
        """One sentence: what was measured with, and whether the tests were run with it."""
        used = ", ".join(f"{name} {version or 'missing'}" for name, version in self.installed.items())
        if not self.tested:
            return f"Measured with {used}; no test lock is installed to compare them with."
        if not self.outside:
            return f"Measured with {used}: the versions the test suite pins (test-lock.txt)."
        pinned = ", ".join(f"{name} {self.tested[name]}" for name in self.outside)
        return (
            f"Measured with {used}: outside the versions the tests were run with ({pinned}); numbers that follow "
            "those libraries' conventions may differ, see `scripts/relock.py`."
        )


def version_report(packages: tuple[str, ...] = MEASURING_PACKAGES) -> VersionReport:
    """Installed versions of ``packages`` (from their metadata, without importing them) and the lock's pins."""
    installed: dict[str, str | None] = {}
    for name in packages:
        try:
            installed[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed[name] = None
    path = lock_path()
    pins = read_pins(path.read_text(encoding="utf-8")) if path is not None else {}
    return VersionReport(installed, {name: pins[name] for name in packages if name in pins})

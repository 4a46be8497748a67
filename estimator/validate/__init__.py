"""Validation against real torch modules: transformers and peft measure what the formulas predict.

Needs the optional extra (``pip install torch==2.13.0 && pip install -e ".[validate]"``).
:mod:`estimator.validate.hf` (spec -> config dict, shrunken twins) imports no torch;
:mod:`estimator.validate.measure` and :mod:`estimator.validate.checks` do.
"""

from __future__ import annotations

import importlib.util

from estimator.errors import EstimatorError

EXTRA_PACKAGES = ("torch", "transformers", "peft", "safetensors")
INSTALL_HINT = 'pip install torch==2.13.0 && pip install -e ".[validate]"'


def require_extra() -> None:
    """One clear line when the validation extra is missing (never an ImportError traceback)."""
    missing = [name for name in EXTRA_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise EstimatorError(
            f"validation needs {', '.join(missing)}, which are not installed; install the extra: {INSTALL_HINT}"
        )

"""The one error type a user sees: its message names the problem and the fix in one line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path


class EstimatorError(ValueError):
    """Bad input: the CLI prints ``error: <message>`` and exits with status 2; the Python API raises it
    (a ValueError) for every bad argument, with the same message."""


class MethodNotApplicableError(EstimatorError):
    """A method the model's layout cannot take (DoRA on fused expert tensors): its row is left out, with why."""


class UnknownFamilyError(EstimatorError):
    """A config.json of a model_type no family knows: the main query can still measure it from transformers
    (:mod:`estimator.validate.unknown`), every other use refuses it in one line."""

    def __init__(self, message: str, path: Path, model_type: str, config: dict[str, Any]) -> None:
        super().__init__(message)
        self.path, self.model_type, self.config = path, model_type, config

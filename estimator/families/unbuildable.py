"""Config values transformers' code cannot build, refused in one line before any count is made.

A null where a config class's code computes with the number (``head_dim ** -0.5``, ``layer_idx >= None``) is
not "the default": transformers 5.24 raises on it, so there is no model to count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from estimator.errors import EstimatorError

if TYPE_CHECKING:
    from estimator.families import Reader


def refuse_null(r: Reader, *keys: str) -> None:
    """One line for the first of ``keys`` the config gives as null (absent keys are the class's defaults)."""
    for key in keys:
        if key in r.config and r.config[key] is None:
            raise EstimatorError(
                f"{r.path}: {key} is null, which transformers 5.24's {r.model_type} code cannot build; give a number"
            )

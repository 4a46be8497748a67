"""Checks several of the smaller families share: the MLP's activation, and heads that divide hidden_size.

The MLP's activation: most hold no parameters; the few whose modules do are counted or refused.

transformers 5.24 builds an MLP's activation from ``ACT2FN[name]`` (``ACT2CLS``): a fresh module per MLP.
Two of them hold learned parameters: ``prelu`` (``nn.PReLU``: one weight) and ``xielu`` (``XIELUActivation``:
``alpha_p`` and ``alpha_n``, one value each; its ``beta`` and ``eps`` are buffers). A family counts them
where its code builds them on purpose (Apertus' xIELU), and refuses them elsewhere in one line.
"""

from __future__ import annotations

from typing import Any

from estimator.errors import EstimatorError
from estimator.families import Reader

ACTIVATION_PARAMS = {"prelu": 1, "xielu": 2}  # parameters per activation module, transformers 5.24


def activation(r: Reader, key: str, default: str, counted: tuple[str, ...] = ()) -> Any:
    """The config's activation under ``key`` (the class's ``default`` when absent), refused in one line where
    its module holds parameters that the family does not count (those in ``counted`` it does)."""
    name = r.get(key, default)
    if name in ACTIVATION_PARAMS and name not in counted:
        raise EstimatorError(
            f"{r.path}: {key} is {name!r}, whose module holds {ACTIVATION_PARAMS[name]} learned parameter(s) per "
            f"MLP in transformers 5.24; a {r.model_type} model is not modelled with it: use a parameter-free "
            f"activation (e.g. {default!r})"
        )
    return name


def whole_heads(r: Reader, hidden: Any, heads: Any) -> None:
    """Refuse, in one line, a hidden_size that is no multiple of the heads where head_dim is hidden_size / heads
    (transformers 5.24's BLOOM and OPT attention refuse it too)."""
    if isinstance(hidden, int) and isinstance(heads, int) and heads > 0 and hidden % heads:
        raise EstimatorError(
            f"{r.path}: hidden_size {hidden:,} is not a multiple of the {heads} attention heads, which a "
            f"{r.model_type} model's head_dim (hidden_size / heads) needs; fix one of them"
        )

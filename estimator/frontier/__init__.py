"""The in-context frontier: every published way to shrink the cache, sized from the model's own layout.

``--kv-method`` takes a comma list of methods, each ``name`` or ``name:key=value;key=value`` (parameters
apart by ``;``, as commas part the methods): ``nvfp4,turboquant:bits=3.5,commvq:bits=1,mha2mla:rank=64;rope=8``.
:func:`parse_kv_methods` reads it; :mod:`estimator.frontier.methods` holds one frozen class per method and
:mod:`estimator.frontier.sizes` the folds that size them.
"""

from __future__ import annotations

from dataclasses import fields
from fractions import Fraction

from estimator.errors import EstimatorError
from estimator.frontier.methods import METHODS, KVMethod

MAX_PARAMETER = 10**9  # ranks, tokens, ratios: far beyond any cache; larger values are refused, not wrapped
LIMITS: dict[tuple[str, str], tuple[Fraction, Fraction, str]] = {
    ("turboquant", "bits"): (Fraction(1, 2), Fraction(16), "bits per channel from 0.5 to 16, e.g. 3.5"),
    ("commvq", "bits"): (Fraction(1), Fraction(2), "1 or 2 bits, as the paper trains its codebooks"),
    ("kvtc", "ratio"): (Fraction(1), Fraction(MAX_PARAMETER), "a compression ratio of at least 1, e.g. 20"),
    ("dms", "ratio"): (Fraction(1), Fraction(MAX_PARAMETER), "a compression ratio of at least 1, e.g. 8"),
}
KEEP_FIX = "a kept fraction above 0 and at most 1, e.g. 0.3"


def valid_methods() -> str:
    """``nvfp4, turboquant:bits=3.5, ...``: every method with its parameters and their defaults."""
    return ", ".join(cls().text for cls in METHODS.values())


def parse_kv_methods(text: str) -> tuple[KVMethod, ...]:
    """Methods from ``"nvfp4,commvq:bits=1,mha2mla:rank=64;rope=8"``; each once; one line listing the valid ones."""
    if not isinstance(text, str):
        raise EstimatorError(f"--kv-method {text!r} must be text such as 'nvfp4,commvq:bits=1'")
    chosen: list[KVMethod] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, given = item.partition(":")
        name = name.strip().lower()
        if name not in METHODS:
            hint = " (parameters of one method are parted by ';', methods by ',')" if "=" in name else ""
            raise EstimatorError(f"unknown --kv-method {name!r}{hint}; use a comma list of: {valid_methods()}")
        chosen.append(_method(name, given))
    if not chosen:
        raise EstimatorError(f"--kv-method is empty; give a comma list of: {valid_methods()}")
    texts = [m.text for m in chosen]
    if len(set(texts)) < len(texts):
        raise EstimatorError(f"--kv-method {text!r} gives a method twice; give each once")
    return tuple(chosen)


def _method(name: str, given: str) -> KVMethod:
    cls = METHODS[name]
    known = {f.name: f for f in fields(cls)}
    values: dict[str, int | Fraction] = {}
    for pair in (p.strip() for p in given.split(";") if p.strip()):
        key, eq, raw = (s.strip().lower() for s in pair.partition("="))
        if key not in known or not eq:
            options = ", ".join(known) or "none"
            raise EstimatorError(f"--kv-method {name}: cannot read {pair!r}; its parameters are {options} (key=value)")
        default = getattr(cls(), key)
        values[key] = _value(name, key, raw, whole=isinstance(default, int))
    return cls(**values)


def _value(name: str, key: str, raw: str, whole: bool) -> int | Fraction:
    """A parameter as a whole number or an exact fraction, within its limits."""
    low, high, fix = LIMITS.get((name, key), (Fraction(1), Fraction(MAX_PARAMETER), "a positive whole number"))
    if key == "keep":
        low, high, fix = Fraction(0), Fraction(1), KEEP_FIX
    if key == "rope":
        low, fix = Fraction(0), "0 or more (MHA2MLA: RoPE frequencies kept per head; TransMLA: RoPE key dims)"
    try:
        value = Fraction(raw)
    except (ValueError, ZeroDivisionError):
        raise EstimatorError(f"--kv-method {name}:{key}={raw!r} is not a number; give {fix}") from None
    out_of_range = value < low or value > high or (key == "keep" and value == 0)
    if out_of_range or ((whole or (name, key) == ("commvq", "bits")) and value.denominator != 1):
        raise EstimatorError(f"--kv-method {name}:{key}={raw} is out of range; give {fix}")
    return int(value) if whole else value


__all__ = ["METHODS", "KVMethod", "parse_kv_methods", "valid_methods"]

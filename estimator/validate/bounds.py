"""Bounds on a config before anything is built from it: a config whose layers, widths, vocabulary, experts or
parameters are beyond any real model's is refused in one line (the measured path builds one module per
layer and per expert). Pure: no torch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from estimator.errors import EstimatorError

MAX_LAYERS = 512  # built one module per layer: the deepest real models have under 200
MAX_WIDTH = 2**20  # hidden, intermediate, head and window sizes: the widest real maps are ~10^5
MAX_VOCAB = 2**22  # the largest real vocabularies are ~2.6 · 10^5
MAX_EXPERTS = 1024  # DeepSeek-V3: 256, Kimi K2: 384
MAX_EXPERT_MODULES = 50_000  # layers × experts, each expert a module (Kimi K2: 61 × 384 = 23,424)
MAX_PARAMS = 10**13  # a standard decoder's count from the config, as a sanity bound (the largest: ~10^12)
LAYER_KEY = re.compile(r"(^|_)(layers?|blocks?|layer)$")
WIDTH_KEY = re.compile(r"(size|dim|width|heads?|embd|d_model|rank|_inner)$")


def _numbers(config: dict[str, Any], depth: int = 0) -> list[tuple[str, int]]:
    """Every whole-number field of a config and its nested configs (``text_config``), by key."""
    found: list[tuple[str, int]] = []
    for key, value in config.items():
        if isinstance(value, int) and not isinstance(value, bool):
            found.append((key.lower(), value))
        elif isinstance(value, dict) and depth < 3:
            found += _numbers(value, depth + 1)
    return found


def check_bounds(config: dict[str, Any], path: Path | str) -> None:
    """Refuse, in one line and before any module is built, a config whose layers, widths, vocabulary, experts
    or parameters (``2 V d + L (4 d² + 3 d F E)``, a standard decoder's count used only as a bound) are beyond
    any real model's."""
    numbers = _numbers(config)

    def largest(test: Any) -> int:
        return max((v for k, v in numbers if test(k)), default=0)

    layers = largest(lambda k: LAYER_KEY.search(k) and "max_window" not in k)
    experts = largest(lambda k: "expert" in k and k.endswith(("experts", "expert")))
    vocab = largest(lambda k: k.endswith("vocab_size"))  # not ngram_vocab_size_base (qwen4_exp: 2 · 10^7 n-grams)
    width = largest(lambda k: WIDTH_KEY.search(k) and "vocab" not in k and "max_position" not in k)
    fix = "this is not a real model's config.json; fix it or pass a family the estimator knows"
    checks = (("layers", layers, MAX_LAYERS), ("experts", experts, MAX_EXPERTS), ("a vocabulary of", vocab, MAX_VOCAB),
              ("a width of", width, MAX_WIDTH), ("expert modules (layers × experts):", layers * experts,
              MAX_EXPERT_MODULES))  # fmt: skip
    for what, value, limit in checks:
        if value > limit:
            raise EstimatorError(f"{path}: {what} {value:,} is over the {limit:,} measured here; {fix}")
    hidden = largest(lambda k: k in ("hidden_size", "d_model", "n_embd", "dim", "hidden_dim"))
    inner = largest(lambda k: "intermediate" in k or k in ("ffn_dim", "n_inner", "d_ff")) or 4 * hidden
    params = 2 * vocab * hidden + layers * (4 * hidden**2 + 3 * hidden * inner * max(1, experts))
    if params > MAX_PARAMS:
        raise EstimatorError(f"{path}: about {params:.2e} parameters, over the {MAX_PARAMS:.0e} measured here; {fix}")

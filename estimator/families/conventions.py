"""What transformers, peft and llama.cpp do with a model type beyond its layout: its conventions, declared by
the family that builds it (``Family.conventions``, keyed by model type) and read with
:func:`estimator.families.conventions_of`, which imports only that family's module.

Every field defaults to "none": a model type that declares nothing gets no conversion, no IA3 or LN-tuning
default, no float32 weights, a state in the model's dtype, no GGUF mapping, no alias, no measured activations.
``tests/test_family_conventions.py`` ties the model types named here to the families and to the reverse tables
(GGUF architectures, aliases, multimodal wrappers) that are read before a family is known.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from estimator.specs import ModelSpec
    from estimator.units import DType


@dataclass(frozen=True, kw_only=True)
class PeftConventions:
    """What peft 0.21 does with one model type where the architecture alone does not decide
    (:mod:`estimator.stores.peft_rules`)."""

    converts_experts: bool = False  # its v4 expert and router names become LoRAs on transformers 5's fused tensors
    ia3: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # default IA3 targets, the feed-forward ones among them
    ln_tuning: tuple[str, ...] | None = None  # default LN-tuning targets, as the layout names the norms
    ln_tuning_unnamed: bool = False  # peft has LN-tuning defaults, but the layout keeps these norms together
    all_linear_skips: tuple[str, ...] = ()  # short names of nn.Linear modules all-linear leaves alone
    prefix: Callable[[ModelSpec, int], tuple[int, str] | None] | None = None  # (spec, n) -> peft's prefix, why
    shadow_unshrunk: bool = False  # ShadowPEFT's mirror keeps every layer and embedding (cannot cut the pattern)
    shadow_refused: str | None = None  # why ShadowPEFT fails on it


@dataclass(frozen=True, kw_only=True)
class TransformersConventions:
    """What transformers 5 does with one model type that the architecture does not require
    (:mod:`estimator.transformers_rules`)."""

    fp32_weights: tuple[str, ...] = ()  # linear maps (layout names) kept in float32 whatever the model's dtype
    fp32_since: tuple[int, int] = (0, 0)  # the first (major, minor) release that keeps them so
    state_dtype: DType | None = None  # the dtype of its recurrent state (None: the model's)
    cached_kv_heads: Callable[[ModelSpec], int] | None = None  # KV heads its cache holds, where not the model's K
    conv1d: bool = False  # its linear maps are Conv1D (weights stored d_in x d_out)
    linear_subclass: str | None = None  # the nn.Linear subclass its maps are (GLoRA refuses such maps)


@dataclass(frozen=True, kw_only=True)
class GgufConventions:
    """How llama.cpp names one model type (:mod:`estimator.checkpoint.gguf_file`)."""

    architecture: str  # general.architecture
    expert_count: str = "num_experts"  # the config.json field {architecture}.expert_count is read into


@dataclass(frozen=True, kw_only=True)
class Conventions:
    """Everything one model type does beyond its layout; the defaults mean none."""

    peft: PeftConventions = PeftConventions()
    transformers: TransformersConventions = TransformersConventions()
    gguf: GgufConventions | None = None
    aliases: tuple[str, ...] = ()  # other model types transformers builds with this one's code
    wrappers: tuple[str, ...] = ()  # multimodal model types whose language model (text_config) is this one
    measured_activations: bool = False  # its training activations validated to the byte


NONE = Conventions()

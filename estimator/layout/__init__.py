"""Layers as data: mixers (what a layer holds), layer groups and layouts (what a model is built of),
and cache formats (how what it holds is stored). Pure values; families build them from a spec.

Kinds that only some families use live in their own modules, imported by those families:
:mod:`estimator.layout.latent` (multi-head latent attention), :mod:`estimator.layout.moe` (routed experts).
"""

from estimator.layout.formats import ConvCache, KVFormat, MlaCache, WindowCache, as_format, window_tokens
from estimator.layout.groups import ExpertLayout, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.mixers import KV_TENSORS, Attention, Mixer

__all__ = [
    "KV_TENSORS",
    "Attention",
    "ConvCache",
    "ExpertLayout",
    "KVFormat",
    "LayerGroup",
    "Layout",
    "LinearMap",
    "Mixer",
    "MlaCache",
    "ParamTensor",
    "WindowCache",
    "as_format",
    "window_tokens",
]

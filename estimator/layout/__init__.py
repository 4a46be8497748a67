"""Layers as data: mixers (what a layer holds), layer groups and layouts (what a model is built of),
and cache formats (how what it holds is stored). Pure values; families build them from a spec."""

from estimator.layout.formats import KVFormat, MlaCache, WindowCache, as_format, window_tokens
from estimator.layout.groups import ExpertLayout, LayerGroup, Layout, LinearMap, MoE, ParamTensor
from estimator.layout.mixers import KV_TENSORS, Attention, LatentAttention, Mixer

__all__ = [
    "KV_TENSORS",
    "Attention",
    "ExpertLayout",
    "KVFormat",
    "LatentAttention",
    "LayerGroup",
    "Layout",
    "LinearMap",
    "Mixer",
    "MlaCache",
    "MoE",
    "ParamTensor",
    "WindowCache",
    "as_format",
    "window_tokens",
]

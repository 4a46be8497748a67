"""Measurements on real transformers and peft modules (needs the ``validate`` extra).

Each function returns what torch reports (parameter counts, tensor bytes, file sizes), never
a number from :mod:`estimator`'s formulas: comparing the two is :mod:`estimator.validate.checks`'s job.
"""

from __future__ import annotations

import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import peft
import torch
import transformers
from safetensors import safe_open

from estimator.stores.kinds import peft_target_modules
from estimator.stores.peft_configs import PeftConfig, lora_config
from estimator.stores.targets import resolve_targets
from estimator.validate.hf import transformers_config

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from estimator.specs import ModelSpec
    from estimator.stores.targets import Targets
    from estimator.units import DType

TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@contextmanager
def _quiet() -> Iterator[None]:
    """transformers warns about tiny twins (token ids, untrained weights); the numbers are unaffected."""
    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        transformers.logging.set_verbosity(level)


def build_model(
    spec: ModelSpec, device: str = "meta", dtype: torch.dtype = torch.float32, attention: str | None = None
) -> Any:
    """The transformers model of ``spec``; on the meta device it holds shapes and no memory."""
    return build_from_config(transformers_config(spec), device, dtype, attention)


def build_from_config(
    config_dict: dict[str, Any], device: str = "meta", dtype: torch.dtype = torch.float32, attention: str | None = None
) -> Any:
    """The transformers causal LM of a config.json's fields (``model_type`` among them)."""
    config_dict = dict(config_dict)
    model_type = config_dict.pop("model_type")
    with _quiet():
        config = transformers.AutoConfig.for_model(model_type, **config_dict)
        config.use_cache = True
        if attention is not None:
            config._attn_implementation = attention
        with torch.device(device):
            model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def transformers_version() -> str:
    """The installed transformers release, whose conventions the measurements follow."""
    return str(transformers.__version__)


def count_params(model: Any) -> int:
    """Parameters as transformers reports them (a tied output head once)."""
    return sum(p.numel() for p in model.parameters())


def lora_trainable_params(model: Any, spec: ModelSpec, targets: Targets, rank: int) -> tuple[int, Any]:
    """Trainable parameters peft adds for LoRA to a meta-device model; returns the count and the model
    with LoRA removed. Created under the meta device, the adapter weights take no memory either.
    """
    config = build_config(lora_config(peft_target_modules(targets, spec), rank))
    with _quiet(), torch.device("meta"):
        lora = peft.get_peft_model(model, config)
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    return trainable, lora.unload()


def _tensor_bytes(value: Any) -> int:
    return value.numel() * value.element_size() if isinstance(value, torch.Tensor) else 0


GROWING_STATES = ("compressed_kv",)  # DeepSeek V4: the compressor's and the indexer's entries, one per m tokens
FIXED_STATES = ("conv_states", "recurrent_states", "buffer_kv", "buffer_gate", "overlap_kv", "overlap_gate")


def layer_cache_bytes(layer: Any) -> tuple[int, int]:
    """(growing, fixed) bytes one cache layer holds: its keys and values (one tensor counted once where the values
    are the keys: DeepSeek V4's K = V), DeepSeek V3.2's indexer keys and V4's compressed entries; and the states kept
    in dicts: convolution and recurrent states (transformers 5's linear-attention layers), V4's compressor tails
    (``buffer_kv``, ``buffer_gate``) and overlap (``overlap_kv``, ``overlap_gate``)."""
    keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
    growing = _tensor_bytes(keys) + (0 if values is keys else _tensor_bytes(values))
    growing += _tensor_bytes(getattr(layer, "indexer_keys", None))
    fixed = 0
    for name in (*GROWING_STATES, *FIXED_STATES):
        states = getattr(layer, name, None) or {}
        held = sum(_tensor_bytes(value) for value in states.values())
        growing, fixed = (growing + held, fixed) if name in GROWING_STATES else (growing, fixed + held)
    return growing, fixed


def linear_cache_bytes(cache: Any) -> int:
    """Bytes of the states a cache keeps outside its layers: MiniMax's lightning attention keeps K^T V per layer in
    ``MiniMaxCache.linear_cache`` (empty lists for its softmax layers)."""
    return sum(_tensor_bytes(state) for state in getattr(cache, "linear_cache", []) if isinstance(state, torch.Tensor))


def cache_bytes(spec: ModelSpec, tokens: Sequence[int], dtype: DType) -> dict[int, tuple[int, int]]:
    """(growing, fixed) bytes the cache of the real, full-size model holds after one forward pass over T
    tokens, for each T.

    The model is built and run under torch's ``FakeTensorMode``: every tensor has its true shape and
    dtype and no storage, so Llama 3 70B runs a forward pass over 100,000 tokens in about a second and
    no memory; the bytes are those of the tensors in the returned cache (numel × element size).
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    out: dict[int, tuple[int, int]] = {}
    with _quiet(), FakeTensorMode(allow_non_fake_inputs=True):
        model = build_model(spec, device="cpu", dtype=TORCH_DTYPES[dtype.value])
        for length in tokens:
            ids = torch.zeros((1, length), dtype=torch.long)
            with torch.no_grad():
                cache = model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
            parts = [layer_cache_bytes(layer) for layer in cache.layers]
            out[length] = (sum(g for g, _ in parts), sum(f for _, f in parts) + linear_cache_bytes(cache))
    return out


def peft_adapter_dtype(twin: ModelSpec, base_dtype: torch.dtype = torch.bfloat16) -> str:
    """The dtype peft creates LoRA weights in on a real base model of ``base_dtype`` (its defaults)."""
    model = build_model(twin, device="cpu", dtype=base_dtype)
    with _quiet():
        modules = peft_target_modules(resolve_targets(twin, "all-linear"), twin)
        lora = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=modules))
    dtypes = {str(p.dtype).removeprefix("torch.") for p in lora.parameters() if p.requires_grad}
    return ", ".join(sorted(dtypes))


def saved_adapter(twin: ModelSpec, targets: Targets, rank: int, dtype: torch.dtype) -> tuple[int, int, int]:
    """Save a LoRA of a real twin with safetensors; return (file bytes, tensor bytes, LoRA parameters).

    The adapter is cast to ``dtype`` before saving, so the file holds exactly that storage type.
    """
    model = build_model(twin, device="cpu", dtype=dtype)
    with _quiet():
        lora = peft.get_peft_model(
            model, build_config(lora_config(peft_target_modules(targets, twin), rank)), autocast_adapter_dtype=False
        )
    params = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    with tempfile.TemporaryDirectory() as folder:
        lora.save_pretrained(folder, safe_serialization=True)
        path = Path(folder) / "adapter_model.safetensors"
        tensor_bytes = 0
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensor = handle.get_tensor(key)
                tensor_bytes += tensor.numel() * tensor.element_size()
        return path.stat().st_size, tensor_bytes, params


def build_config(config: PeftConfig) -> Any:
    """The peft configuration object a :class:`~estimator.stores.peft_configs.PeftConfig` describes."""
    return getattr(peft, config.kind)(**config.kwargs)


def peft_trainable_params(spec: ModelSpec, config: PeftConfig) -> int:
    """Trainable parameters peft adds with ``config`` to the meta-device model of ``spec``."""
    model = build_model(spec)
    with _quiet(), torch.device("meta"):
        adapted = peft.get_peft_model(model, build_config(config))
    return sum(p.numel() for p in adapted.parameters() if p.requires_grad)


class _LowRankRotateLayer(torch.nn.Module):
    """pyreft's ``LowRankRotateLayer``: a d × r weight kept orthonormal by a parametrization."""

    def __init__(self, d: int, r: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(d, r))


def loreft_intervention_params(hidden_size: int, rank: int) -> int:
    """Trainable parameters of one LoReFT intervention built to pyreft's ``LoreftIntervention`` shapes.

    pyreft (which pins transformers 4.45) is not installed here; this module reproduces its
    definition: ``rotate_layer = orthogonal(LowRankRotateLayer(d, r))`` and
    ``learned_source = nn.Linear(d, r)``.
    """
    with torch.device("meta"):
        rotate = torch.nn.utils.parametrizations.orthogonal(_LowRankRotateLayer(hidden_size, rank))
        source = torch.nn.Linear(hidden_size, rank)
    return sum(p.numel() for module in (rotate, source) for p in module.parameters() if p.requires_grad)


class _Expert(torch.nn.Module):
    """One routed expert as the checkpoints lay it out: its maps (name, d_in, d_out) as nn.Linear."""

    def __init__(self, maps: tuple[tuple[str, int, int], ...]) -> None:
        super().__init__()
        for name, d_in, d_out in maps:
            self.add_module(name, torch.nn.Linear(d_in, d_out, bias=False))


def per_expert_block_lora_params(
    spec: ModelSpec, rank: int, maps: tuple[tuple[str, int, int], ...], router_linear: bool
) -> int:
    """peft's all-linear LoRA on one sparse MLP block laid out per expert, as the checkpoints are.

    Built to the checkpoint's shapes: E experts, each of ``maps`` (gate, up and down; up and down where
    the experts are not gated) as ``nn.Linear``, and a router (an ``nn.Linear`` where the checkpoint's
    code has one, a bare weight otherwise); shared experts are left out (ordinary MLPs, measured on
    the real model).
    """
    d, e = spec.hidden_size, spec.n_routed_experts or 0
    with torch.device("meta"):
        block = torch.nn.Module()
        block.experts = torch.nn.ModuleList(_Expert(maps) for _ in range(e))
        if router_linear:
            block.gate = torch.nn.Linear(d, e, bias=False)
        else:
            block.gate = torch.nn.Module()
            block.gate.weight = torch.nn.Parameter(torch.empty(e, d))
        wrapper = torch.nn.Module()
        wrapper.mlp = block
        names = [name for name, _, _ in maps]
        linear_names = [*names, "gate"] if router_linear else names  # every nn.Linear: all-linear
        with _quiet():
            lora = peft.get_peft_model(wrapper, peft.LoraConfig(r=rank, target_modules=linear_names))
    return sum(p.numel() for p in lora.parameters() if p.requires_grad)

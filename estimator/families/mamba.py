"""Mamba, FalconMamba and Mamba-2: pure state-space models, every layer one mixer block, no attention and no MLP.

Every layer is an RMSNorm and a mixer (``backbone.layers.{i}.norm``, ``.mixer``); the model adds the
embeddings, ``norm_f`` and an output head (tied by default for Mamba, untied for Mamba-2). With
d_inner = expand · hidden_size:

- Mamba (``MambaMixer``): ``in_proj`` (d -> 2 d_inner: x and the gate z), a depthwise ``conv1d`` over
  d_inner channels (kernel K, bias from ``use_conv_bias``), ``x_proj`` (d_inner -> R + 2 N: the time
  step and B, C), ``dt_proj`` (R -> d_inner, always with a bias), ``A_log`` (d_inner × N), ``D``
  (d_inner), ``out_proj`` (d_inner -> d); ``use_bias`` adds biases to in_proj and out_proj. R is
  ``time_step_rank`` ("auto": ⌈hidden / 16⌉). State per layer: conv d_inner × K, recurrent d_inner · N.
- FalconMamba (``FalconMambaMixer``): Mamba's mixer and defaults; its RMS norms on B, C and the time step
  (``b_layernorm``, ``c_layernorm``, ``dt_layernorm``) hold no parameters (weightless: their ``weight`` is a
  non-persistent buffer), so it counts and caches as Mamba. FalconMamba 7B (d 4,096, d_inner 8,192 from its
  ``intermediate_size``, though ``expand`` says 16; R 256, 64 layers, vocabulary 65,024, untied): 64 ·
  105,312,256 + 2 · 65,024 · 4,096 + 4,096 = 7,272,665,088 parameters.
- Mamba-2 (``Mamba2Mixer``): H heads of P (H · P = d_inner), G groups of B and C of N each;
  ``in_proj`` (d -> 2 d_inner + 2 G N + H: z, x, B, C and the time step), a depthwise ``conv1d`` over
  the conv_dim = d_inner + 2 G N channels of x, B, C, ``dt_bias``, ``A_log`` and ``D`` (H each), a gated
  RMSNorm of d_inner, ``out_proj`` (d_inner -> d). State per layer: conv conv_dim × K, recurrent H · P · N.

transformers keeps the recurrent state in float32 whatever the model's dtype (the scan runs in float32)
and the convolution state in the model's dtype. The mixer's maps are a gated block in the MLP's place
(transformers calls in_proj the "gated MLP's linear projection"): they are counted as "mlp", and the
model has no attention maps. peft refuses LoRA on ``out_proj`` (and ``conv1d``) of these model types.

Mamba 2.8B: 64 · (2,560 · 10,240 + 5,120 · 4 + 5,120 + 5,120 · 192 + 160 · 5,120 + 5,120 + 5,120 · 16
+ 5,120 + 5,120 · 2,560 + 2,560) + 50,280 · 2,560 + 2,560 = 2,768,345,600 parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import Family, Reader
from estimator.families.activation import activation
from estimator.families.conventions import Conventions, PeftConventions, TransformersConventions
from estimator.families.schema import MAX_CONTEXT, count, flag, text
from estimator.layout import LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.groups import output_head, roles
from estimator.layout.recurrent import RecurrentState
from estimator.units import DType

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

MAMBA1 = ("mamba", "falcon_mamba")  # Mamba-1 mixers
_DEFAULTS: dict[str, dict[str, Any]] = {  # MambaConfig / Mamba2Config defaults for absent keys
    "mamba": {"vocab_size": 50280, "state_size": 16, "conv_kernel": 4, "expand": 2, "tie_word_embeddings": True},
    "falcon_mamba": {"vocab_size": 50280, "state_size": 16, "conv_kernel": 4, "expand": 2, "tie_word_embeddings": True},
    "mamba2": {
        "vocab_size": 32768,
        "state_size": 128,
        "conv_kernel": 4,
        "expand": 2,
        "tie_word_embeddings": False,
        "num_heads": 128,
        "head_dim": 64,
        "n_groups": 8,
    },
}


def _rank(value: Any) -> str | None:
    ok = value == "auto" or (not isinstance(value, bool) and isinstance(value, int) and 1 <= value <= 10**9)
    return None if ok else '"auto" or a whole number from 1'


FIELDS = {
    "state_size": count(1, 100_000),
    "conv_kernel": count(1, 1024),
    "expand": count(1, 1024),
    "time_step_rank": _rank,
    "use_bias": flag,
    "use_conv_bias": flag,
    "num_heads": count(1, 10**6),
    "n_groups": count(1, 10**6),
    "hidden_act": text,
}


def _default(r: Reader, key: str) -> Any:
    value = _DEFAULTS[r.model_type][key]
    return r.get(key, value, f"{value} ({r.model_type} config default)")


def _inner(r: Reader, expand: Any, hidden: Any) -> Any:
    """d_inner: Mamba's ``intermediate_size`` where the config has it (MambaConfig derives it from expand, but
    a config.json's value is set after and wins), else expand · hidden_size (always so for Mamba-2)."""
    if r.model_type in MAMBA1 and r.config.get("intermediate_size") is not None:
        return r.config["intermediate_size"]
    return expand * hidden


def read(r: Reader) -> dict[str, Any]:
    n, hidden = r.need("num_hidden_layers"), r.need("hidden_size")
    expand = _default(r, "expand")
    activation(r, "hidden_act", "silu")  # the mixer's ACT2FN[hidden_act]: one with parameters is refused
    fields: dict[str, Any] = {
        "num_hidden_layers": n,
        "hidden_size": hidden,
        "vocab_size": _default(r, "vocab_size"),
        "max_position_embeddings": r.get(
            "max_position_embeddings", MAX_CONTEXT, "no position embeddings: no context limit of its own"
        ),
        "tie_word_embeddings": _default(r, "tie_word_embeddings"),
        "layer_types": ("mamba",) * n,
        "mamba_version": 1 if r.model_type in MAMBA1 else 2,
        "mamba_d_state": _default(r, "state_size"),
        "mamba_d_conv": _default(r, "conv_kernel"),
        "mamba_d_inner": _inner(r, expand, hidden),
        "mamba_conv_bias": r.get("use_conv_bias", True),
        "mamba_proj_bias": r.get("use_bias", False),
    }
    if r.model_type in MAMBA1:
        rank = r.get("time_step_rank", "auto")
        fields["mamba_dt_rank"] = -(-hidden // 16) if rank == "auto" else rank
        if rank == "auto":
            r.note(f"time_step_rank auto: ceil(hidden_size / 16) = {fields['mamba_dt_rank']}, as MambaConfig")
    else:
        heads, head_dim = _default(r, "num_heads"), _default(r, "head_dim")
        fields.update(mamba_n_heads=heads, mamba_head_dim=head_dim, mamba_n_groups=_default(r, "n_groups"))
        if heads * head_dim != expand * hidden:
            r.note(f"num_heads · head_dim = {heads * head_dim:,} is not expand · hidden_size: transformers refuses it")
    return fields


def mixer(spec: ModelSpec) -> RecurrentState:
    """The state of one layer. Mamba 2.8B: conv 5,120 channels × 4, recurrent 5,120 · 16 = 81,920.
    Mamba-Codestral 7B: conv 8,192 + 2 · 8 · 128 = 10,240 channels × 4, recurrent 128 · 64 · 128."""
    di, n, k = spec.need("mamba_d_inner"), spec.need("mamba_d_state"), spec.need("mamba_d_conv")
    if spec.model_type in MAMBA1:
        return RecurrentState("Mamba", di, k, di * n)
    heads, groups = spec.need("mamba_n_heads"), spec.need("mamba_n_groups")
    return RecurrentState("Mamba-2", di + 2 * groups * n, k, heads * spec.need("mamba_head_dim") * n)


def _maps(spec: ModelSpec) -> tuple[LinearMap, ...]:
    d, di, n = spec.hidden_size, spec.need("mamba_d_inner"), spec.need("mamba_d_state")
    bias = spec.mamba_proj_bias
    out = LinearMap("mixer.out_proj", di, d, bias, roles("down"), "mlp")
    gate_up = roles("gate", "up")
    if spec.model_type in MAMBA1:
        rank = spec.need("mamba_dt_rank")
        return (
            LinearMap("mixer.in_proj", d, 2 * di, bias, gate_up, "mlp"),
            LinearMap("mixer.x_proj", di, rank + 2 * n, False, roles("gate"), "mlp"),
            LinearMap("mixer.dt_proj", rank, di, True, roles("gate"), "mlp"),
            out,
        )
    heads, groups = spec.need("mamba_n_heads"), spec.need("mamba_n_groups")
    return (LinearMap("mixer.in_proj", d, 2 * di + 2 * groups * n + heads, bias, gate_up, "mlp"), out)


def _tensors(spec: ModelSpec) -> tuple[ParamTensor, ...]:
    """conv1d (and its bias), the SSM's A_log, D (and Mamba-2's dt_bias and gated norm), the layer's norm."""
    state = mixer(spec)
    conv = state.conv_channels
    tensors = [ParamTensor("mixer.conv1d", conv * state.conv_kernel, "recurrent")]
    if spec.mamba_conv_bias:
        tensors.append(ParamTensor("mixer.conv1d.bias", conv, "recurrent"))
    if spec.model_type in MAMBA1:
        di = spec.need("mamba_d_inner")
        tensors.append(ParamTensor("mixer.A_log", di * spec.need("mamba_d_state"), "recurrent"))
        tensors.append(ParamTensor("mixer.D", di, "recurrent"))
    else:
        heads = spec.need("mamba_n_heads")
        tensors += [ParamTensor(f"mixer.{name}", heads, "recurrent") for name in ("dt_bias", "A_log", "D")]
        tensors.append(ParamTensor("mixer.norm", spec.need("mamba_d_inner"), "norm"))
    return (*tensors, ParamTensor("norm", spec.hidden_size, "norm"))


def build(spec: ModelSpec) -> Layout:
    """One group of identical layers; embeddings, norm_f and the head (unless tied) outside them."""
    d, v = spec.hidden_size, spec.vocab_size
    group = LayerGroup(spec.num_hidden_layers, mixer(spec), _maps(spec), _tensors(spec))
    outside = (ParamTensor("embeddings", v * d, "embedding"), ParamTensor("norm_f", d, "norm"))
    return Layout((group,), (*outside, *output_head(v, d, spec.tie_word_embeddings)))


def to_config(spec: ModelSpec) -> dict[str, Any]:
    config: dict[str, Any] = {
        "hidden_size": spec.hidden_size,
        "max_position_embeddings": spec.max_position_embeddings,
        "state_size": spec.mamba_d_state,
        "conv_kernel": spec.mamba_d_conv,
        "expand": spec.need("mamba_d_inner") // spec.hidden_size,
        "use_conv_bias": spec.mamba_conv_bias,
        "use_bias": spec.mamba_proj_bias,
    }
    if spec.model_type in MAMBA1:  # intermediate_size: d_inner where it is no multiple of hidden_size
        config.update(time_step_rank=spec.mamba_dt_rank, intermediate_size=spec.mamba_d_inner)
    else:
        config.update(num_heads=spec.mamba_n_heads, head_dim=spec.mamba_head_dim, n_groups=spec.mamba_n_groups)
    return config


def twin(spec: ModelSpec, update: dict[str, Any]) -> dict[str, Any]:
    """No MLP (intermediate_size None); d_inner = expand · the twin's hidden size, and for Mamba-2 heads of
    8 with the groups kept where they divide them (G must divide H), else 1."""
    expand = spec.need("mamba_d_inner") // spec.hidden_size
    hidden = update.get("hidden_size", spec.hidden_size)
    update = {**update, "intermediate_size": None, "mamba_d_inner": expand * hidden}
    if spec.model_type in MAMBA1:
        update["mamba_dt_rank"] = -(-hidden // 16)
    else:
        head_dim = 8
        heads = expand * hidden // head_dim
        groups = spec.need("mamba_n_groups")
        update.update(mamba_head_dim=head_dim, mamba_n_heads=heads, mamba_n_groups=groups if heads % groups == 0 else 1)
    return update


# peft refuses LoRA on out_proj (_check_lora_target_modules_mamba); the scans run and return float32 (Falcon-Mamba's
# with norms on B, C and the time step), which the cache keeps
_SKIPS, _STATE = ("out_proj",), TransformersConventions(state_dtype=DType.fp32)
_REFUSED = "peft's mirror cannot set MambaConfig's layer_types (it has no setter), so it fails"
CONVENTIONS = {
    "mamba": Conventions(peft=PeftConventions(all_linear_skips=_SKIPS, shadow_refused=_REFUSED), transformers=_STATE),
    "falcon_mamba": Conventions(peft=PeftConventions(all_linear_skips=_SKIPS), transformers=_STATE),
    "mamba2": Conventions(peft=PeftConventions(all_linear_skips=_SKIPS), transformers=_STATE),
}

FAMILIES = [
    Family(
        ("mamba", "falcon_mamba", "mamba2"), read, build, to_config, fields=FIELDS, twin=twin, conventions=CONVENTIONS
    )
]

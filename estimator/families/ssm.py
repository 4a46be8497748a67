"""Mamba-1 and Mamba-2 mixers as layer parts, shared by the hybrid families (Jamba, Bamba, Granite 4.0-H,
Nemotron-H, Falcon-H1, Zamba2).

Mamba-2 (``Mamba2Mixer`` and its copies), with H heads of P, d_inner = H · P, G groups, state N, kernel K:

- ``in_proj``: d -> d_inner (z) + conv_dim (x, B, C) + H (dt), conv_dim = d_inner + 2 · G · N;
- ``conv1d``: depthwise, conv_dim · K weights (+ conv_dim biases);
- ``dt_bias``, ``A_log``, ``D``: H each; ``norm``: a gated RMSNorm of d_inner weights (where the family has it);
- ``out_proj``: d_inner -> d.

Its state per sequence: conv_dim channels of K columns and H · P · N recurrent elements (Nemotron-H 56B:
20,480 channels, 256 · 64 · 256 = 4,194,304 elements per layer).

Mamba-1 (Jamba's mixer), with d_inner = expand · d, state N, kernel K, time-step rank R:
``in_proj`` d -> 2 · d_inner, ``conv1d`` d_inner · K (+ d_inner), ``x_proj`` d_inner -> R + 2N,
``dt_proj`` R -> d_inner (with bias), ``A_log`` d_inner · N, ``D`` d_inner, ``out_proj`` d_inner -> d.
State: d_inner channels of K columns and d_inner · N recurrent elements.

The input maps of a recurrent mixer carry the roles q, k, v together (C, B and x in the SSM-attention
duality: one fused map, adapted whole) and its output map the role o; all sit in the attention block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.families import schema
from estimator.layout import LinearMap, ParamTensor
from estimator.layout.groups import roles
from estimator.layout.recurrent import RecurrentState

if TYPE_CHECKING:
    from estimator.families import Reader
    from estimator.specs import ModelSpec

INPUT_ROLES = roles("q", "k", "v")


def mamba2_fields(r: Reader, names: dict[str, str], defaults: dict[str, Any], d_inner: int | None) -> dict[str, Any]:
    """The Mamba-2 spec fields from a family's config keys (``names``: heads, head_dim, groups, state, kernel,
    conv_bias, proj_bias -> config key), with the family's transformers defaults for absent keys.

    ``d_inner`` is the family's inner width (expand · hidden, or mamba_d_ssm); a head_dim of "auto" or absent is
    d_inner / heads, as transformers derives it.
    """
    heads = r.get(names["heads"], defaults["heads"], f"{defaults['heads']} Mamba heads (config default)")
    head_dim: Any = defaults.get("head_dim", "auto")  # Zamba2 derives it whatever its config says
    if "head_dim" in names:
        head_dim = r.get(names["head_dim"], head_dim, f"head dim {head_dim} (config default)")
    if head_dim == "auto" and isinstance(d_inner, int) and isinstance(heads, int) and heads > 0:
        head_dim = d_inner // heads
        r.note(f"Mamba head dim = {d_inner:,} / {heads} heads = {head_dim}, as transformers derives it")
    fields = {
        "mamba_version": 2,
        "mamba_n_heads": heads,
        "mamba_head_dim": head_dim,
        "mamba_d_inner": d_inner if d_inner is not None else heads * head_dim,
        "mamba_n_groups": r.get(names["groups"], defaults["groups"], f"{defaults['groups']} groups (config default)"),
        "mamba_d_state": r.get(names["state"], defaults["state"], f"state {defaults['state']} (config default)"),
        "mamba_d_conv": r.get(names["kernel"], defaults["kernel"], f"kernel {defaults['kernel']} (config default)"),
        "mamba_conv_bias": r.get(names["conv_bias"], True),
        "mamba_proj_bias": r.get(names["proj_bias"], False),
    }
    return fields


def mamba2_checks(names: dict[str, str]) -> dict[str, schema.Check]:
    """Config checks for a family's Mamba-2 keys (head_dim may also be "auto")."""
    checks: dict[str, schema.Check] = {
        names[key]: schema.SIZE for key in ("heads", "groups", "state", "kernel") if key in names
    }
    checks.update({names[key]: schema.flag for key in ("conv_bias", "proj_bias") if key in names})
    if "head_dim" in names:
        size = schema.SIZE

        def head_dim(value: Any) -> str | None:
            return None if value == "auto" else size(value)

        checks[names["head_dim"]] = head_dim
    return checks


def conv_dim(spec: ModelSpec) -> int:
    """Channels of the Mamba-2 convolution: d_inner + 2 · G · N."""
    return spec.need("mamba_d_inner") + 2 * spec.need("mamba_n_groups") * spec.need("mamba_d_state")


def mamba2_state(spec: ModelSpec) -> RecurrentState:
    """conv_dim channels of K columns, H · P · N recurrent elements."""
    elements = spec.need("mamba_n_heads") * spec.need("mamba_head_dim") * spec.need("mamba_d_state")
    return RecurrentState("Mamba-2", conv_dim(spec), spec.need("mamba_d_conv"), elements)


def mamba2_maps(spec: ModelSpec, prefix: str, out_bias: bool | None = None) -> tuple[LinearMap, ...]:
    """in_proj (d -> d_inner + conv_dim + H) and out_proj (d_inner -> d); biases from mamba_proj_bias unless
    ``out_bias`` is given (Falcon-H1's projectors_bias)."""
    d, inner, heads = spec.hidden_size, spec.need("mamba_d_inner"), spec.need("mamba_n_heads")
    bias = spec.mamba_proj_bias
    return (
        LinearMap(f"{prefix}.in_proj", d, inner + conv_dim(spec) + heads, bias, INPUT_ROLES, "attention"),
        LinearMap(f"{prefix}.out_proj", inner, d, bias if out_bias is None else out_bias, roles("o"), "attention"),
    )


def mamba2_tensors(spec: ModelSpec, prefix: str, gated_norm: bool = True) -> tuple[ParamTensor, ...]:
    """conv1d weight (conv_dim · K) and bias, dt_bias, A_log, D (H each), the gated norm (d_inner)."""
    channels, heads = conv_dim(spec), spec.need("mamba_n_heads")
    tensors = [ParamTensor(f"{prefix}.conv1d.weight", channels * spec.need("mamba_d_conv"), "recurrent")]
    if spec.mamba_conv_bias:
        tensors.append(ParamTensor(f"{prefix}.conv1d.bias", channels, "recurrent"))
    tensors += [ParamTensor(f"{prefix}.{name}", heads, "recurrent") for name in ("dt_bias", "A_log", "D")]
    if gated_norm:
        tensors.append(ParamTensor(f"{prefix}.norm", spec.need("mamba_d_inner"), "norm"))
    return tuple(tensors)


def mamba2_config(spec: ModelSpec, names: dict[str, str]) -> dict[str, Any]:
    """The config.json keys of the Mamba-2 fields, under the family's names."""
    values = {
        "heads": spec.mamba_n_heads,
        "head_dim": spec.mamba_head_dim,
        "groups": spec.mamba_n_groups,
        "state": spec.mamba_d_state,
        "kernel": spec.mamba_d_conv,
        "conv_bias": spec.mamba_conv_bias,
        "proj_bias": spec.mamba_proj_bias,
    }
    return {names[key]: value for key, value in values.items() if key in names}


def mamba2_twin(update: dict[str, Any], d_inner: int) -> dict[str, Any]:
    """A small Mamba-2 for a twin: 4 heads of d_inner / 4, one group, state 16 (kernel kept)."""
    return {**update, "mamba_n_heads": 4, "mamba_head_dim": d_inner // 4, "mamba_d_inner": d_inner,
            "mamba_n_groups": 1, "mamba_d_state": 16}  # fmt: skip


def mamba1_state(spec: ModelSpec) -> RecurrentState:
    """d_inner channels of K columns, d_inner · N recurrent elements."""
    inner = spec.need("mamba_d_inner")
    return RecurrentState("Mamba", inner, spec.need("mamba_d_conv"), inner * spec.need("mamba_d_state"))

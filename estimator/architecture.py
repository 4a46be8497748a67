"""What each family's transformers code builds: its linear maps, norms and embeddings.

Each family function reads the modelling code's layout, not just the config keys:

- llama / mistral / qwen2: separate q, k, v, o and gated MLP (gate, up, down); RMSNorm (weight only).
  Biases: llama from ``attention_bias`` / ``mlp_bias``; mistral none; qwen2 on q, k, v always
  (hard-coded in ``Qwen2Attention``), never on o.
- phi3: fused ``qkv_proj`` (d -> (H + 2K) d_h) and fused ``gate_up_proj`` (d -> 2F); no biases.
- falcon: fused ``query_key_value`` (d -> (H + 2K) d_h, K = 1 for multi-query), ``dense``,
  non-gated MLP ``dense_h_to_4h`` / ``dense_4h_to_h``; LayerNorm (weight and bias); ``bias`` flag
  for every linear; embeddings tied by default.
- gpt2: ``Conv1D`` maps (same parameters as a linear map), biases everywhere, learned position
  embeddings, LayerNorm, tied embeddings.

Parameters, LoRA, and every later adapter size derive from :func:`linear_maps`, so they cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

Block = Literal["attention", "mlp"]
Group = Literal["embedding", "norm", "lm_head"]


@dataclass(frozen=True)
class LinearMap:
    """One linear map (``nn.Linear`` or GPT-2's ``Conv1D``) inside the decoder layers.

    ``name`` is the module path inside a layer as transformers names it (``self_attn.q_proj``),
    ``roles`` the canonical projections it computes ({"q"}, or {"q", "k", "v"} when fused),
    ``count`` copies per layer and ``layers`` how many layers hold it.
    """

    name: str
    d_in: int
    d_out: int
    bias: bool
    roles: frozenset[str]
    block: Block
    count: int = 1
    layers: int = 1

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def copies(self) -> int:
        """Instances in the whole model: copies per layer x layers."""
        return self.count * self.layers

    @property
    def weight_params(self) -> int:
        """d_in · d_out per instance, times instances."""
        return self.d_in * self.d_out * self.copies

    @property
    def bias_params(self) -> int:
        """d_out per instance when the map has a bias."""
        return self.d_out * self.copies if self.bias else 0

    @property
    def params(self) -> int:
        return self.weight_params + self.bias_params

    @property
    def full_rank(self) -> int:
        """The largest rank a factorisation of this map can have: min(d_in, d_out)."""
        return min(self.d_in, self.d_out)


@dataclass(frozen=True)
class ParamTensor:
    """A parameter tensor outside the linear maps: embeddings, norms, the output head."""

    name: str
    numel: int
    group: Group
    copies: int = 1

    @property
    def params(self) -> int:
        return self.numel * self.copies


def _roles(*names: str) -> frozenset[str]:
    return frozenset(names)


def _llama_like(spec: ModelSpec, qkv_bias: bool, o_bias: bool, mlp_bias: bool) -> tuple[LinearMap, ...]:
    d, f, n_layers = spec.hidden_size, spec.intermediate_size, spec.num_hidden_layers
    q_out = spec.num_attention_heads * spec.head_dim
    kv_out = spec.num_key_value_heads * spec.head_dim
    return (
        LinearMap("self_attn.q_proj", d, q_out, qkv_bias, _roles("q"), "attention", layers=n_layers),
        LinearMap("self_attn.k_proj", d, kv_out, qkv_bias, _roles("k"), "attention", layers=n_layers),
        LinearMap("self_attn.v_proj", d, kv_out, qkv_bias, _roles("v"), "attention", layers=n_layers),
        LinearMap("self_attn.o_proj", q_out, d, o_bias, _roles("o"), "attention", layers=n_layers),
        LinearMap("mlp.gate_proj", d, f, mlp_bias, _roles("gate"), "mlp", layers=n_layers),
        LinearMap("mlp.up_proj", d, f, mlp_bias, _roles("up"), "mlp", layers=n_layers),
        LinearMap("mlp.down_proj", f, d, mlp_bias, _roles("down"), "mlp", layers=n_layers),
    )


def _phi3(spec: ModelSpec) -> tuple[LinearMap, ...]:
    d, f, n_layers = spec.hidden_size, spec.intermediate_size, spec.num_hidden_layers
    q_out = spec.num_attention_heads * spec.head_dim
    qkv_out = q_out + 2 * spec.num_key_value_heads * spec.head_dim
    return (
        LinearMap("self_attn.qkv_proj", d, qkv_out, False, _roles("q", "k", "v"), "attention", layers=n_layers),
        LinearMap("self_attn.o_proj", q_out, d, False, _roles("o"), "attention", layers=n_layers),
        LinearMap("mlp.gate_up_proj", d, 2 * f, False, _roles("gate", "up"), "mlp", layers=n_layers),
        LinearMap("mlp.down_proj", f, d, False, _roles("down"), "mlp", layers=n_layers),
    )


def _falcon(spec: ModelSpec) -> tuple[LinearMap, ...]:
    d, f, n_layers, b = spec.hidden_size, spec.intermediate_size, spec.num_hidden_layers, spec.bias
    qkv_out = (spec.num_attention_heads + 2 * spec.num_key_value_heads) * spec.head_dim
    return (
        LinearMap(
            "self_attention.query_key_value",
            d,
            qkv_out,
            b,
            _roles("q", "k", "v"),
            "attention",
            layers=n_layers,
        ),
        LinearMap("self_attention.dense", d, d, b, _roles("o"), "attention", layers=n_layers),
        LinearMap("mlp.dense_h_to_4h", d, f, b, _roles("up"), "mlp", layers=n_layers),
        LinearMap("mlp.dense_4h_to_h", f, d, b, _roles("down"), "mlp", layers=n_layers),
    )


def _gpt2(spec: ModelSpec) -> tuple[LinearMap, ...]:
    d, f, n_layers = spec.hidden_size, spec.intermediate_size, spec.num_hidden_layers
    return (
        LinearMap("attn.c_attn", d, 3 * d, True, _roles("q", "k", "v"), "attention", layers=n_layers),
        LinearMap("attn.c_proj", d, d, True, _roles("o"), "attention", layers=n_layers),
        LinearMap("mlp.c_fc", d, f, True, _roles("up"), "mlp", layers=n_layers),
        LinearMap("mlp.c_proj", f, d, True, _roles("down"), "mlp", layers=n_layers),
    )


def linear_maps(spec: ModelSpec) -> tuple[LinearMap, ...]:
    """The linear maps of the decoder layers, as the family's transformers code builds them."""
    match spec.model_type:
        case "llama":
            return _llama_like(spec, spec.attention_bias, spec.attention_bias, spec.mlp_bias)
        case "mistral":
            return _llama_like(spec, qkv_bias=False, o_bias=False, mlp_bias=False)
        case "qwen2":
            return _llama_like(spec, qkv_bias=True, o_bias=False, mlp_bias=False)
        case "phi3":
            return _phi3(spec)
        case "falcon":
            return _falcon(spec)
        case "gpt2":
            return _gpt2(spec)


def falcon_norms_per_layer(spec: ModelSpec) -> int:
    """LayerNorms in a Falcon layer: 2 if sequential; in parallel 1 (7B) or 2 (new architecture)."""
    if not spec.parallel_attn:
        return 2
    if spec.num_ln_in_parallel_attn is not None:
        return spec.num_ln_in_parallel_attn
    return 2 if spec.new_decoder_architecture else 1


def other_tensors(spec: ModelSpec) -> tuple[ParamTensor, ...]:
    """Embeddings, norms and the output head: every parameter that is not in a linear map.

    RMSNorm holds d weights; LayerNorm holds d weights and d biases. A tied output head shares
    the input embedding's tensor and is counted once (as transformers' ``parameters()`` does).
    """
    d, v, n_layers = spec.hidden_size, spec.vocab_size, spec.num_hidden_layers
    tensors: list[ParamTensor]
    match spec.model_type:
        case "llama" | "mistral" | "qwen2" | "phi3":
            tensors = [
                ParamTensor("embed_tokens", v * d, "embedding"),
                ParamTensor("input_layernorm", d, "norm", n_layers),
                ParamTensor("post_attention_layernorm", d, "norm", n_layers),
                ParamTensor("norm", d, "norm"),
            ]
        case "falcon":
            tensors = [
                ParamTensor("word_embeddings", v * d, "embedding"),
                ParamTensor("layer norms", 2 * d, "norm", falcon_norms_per_layer(spec) * n_layers),
                ParamTensor("ln_f", 2 * d, "norm"),
            ]
        case "gpt2":
            tensors = [
                ParamTensor("wte", v * d, "embedding"),
                ParamTensor("wpe", spec.max_position_embeddings * d, "embedding"),
                ParamTensor("ln_1", 2 * d, "norm", n_layers),
                ParamTensor("ln_2", 2 * d, "norm", n_layers),
                ParamTensor("ln_f", 2 * d, "norm"),
            ]
    if not spec.tie_word_embeddings:
        tensors.append(ParamTensor("lm_head", v * d, "lm_head"))
    return tuple(tensors)


def param_breakdown(spec: ModelSpec) -> dict[str, int]:
    """Parameters by part: embedding, attention, mlp, norm, lm_head (zero when tied)."""
    parts = {"embedding": 0, "attention": 0, "mlp": 0, "norm": 0, "lm_head": 0}
    for linear in spec.linear_maps:
        parts[linear.block] += linear.params
    for tensor in other_tensors(spec):
        parts[tensor.group] += tensor.params
    return parts


def total_params(spec: ModelSpec) -> int:
    """All parameters: the sum of :func:`param_breakdown` (Llama 3 70B: 70,553,706,496)."""
    return sum(param_breakdown(spec).values())

"""DeepSeek V4 (``deepseek_v4``): shared-KV attention over a sliding window plus compressed entries, hyper-connections
and hash-routed then top-k-routed experts, as transformers 5.24's ``DeepseekV4ForCausalLM`` builds it.

Per layer (d = hidden_size, H heads of d_h = head_dim, q_r = q_lora_rank, g = o_groups, o_r = o_lora_rank,
n = hc_mult, E experts of F = moe_intermediate_size):

- attention: ``q_a_proj`` (d -> q_r), ``q_a_norm`` (q_r), ``q_b_proj`` (q_r -> H d_h), ``kv_proj`` (d -> d_h, one head
  read as both key and value), ``kv_norm`` (d_h), the grouped output ``o_a_proj`` (an ``nn.Linear`` of H d_h / g ->
  g o_r applied per group) and ``o_b_proj`` (g o_r -> d), per-head ``sinks`` (H); no biases.
- by ``layer_types``: ``sliding_attention`` nothing more; ``heavily_compressed_attention`` (HCA, rate m' =
  ``compress_rates``' 128) a compressor ``kv_proj``, ``gate_proj`` (d -> d_h), ``position_bias`` (m' × d_h),
  ``kv_norm`` (d_h); ``compressed_sparse_attention`` (CSA, m = 4) the same at 2 d_h (two overlapping series) and
  a lightning indexer of H_i = ``index_n_heads`` × d_i = ``index_head_dim``: ``kv_proj``, ``gate_proj`` (d -> 2 d_i),
  ``position_bias`` (m × 2 d_i), ``kv_norm`` (d_i), ``q_b_proj`` (q_r -> H_i d_i), ``scorer.weights_proj`` (d -> H_i).
- MLP (``hash_moe`` or ``moe``: the same tensors; the hash router's ``tid2eid`` is a buffer): the router weight (E × d,
  a bare parameter), fused experts (E × 2F × d, E × d × F), one shared MLP of F (``n_shared_experts`` is not read).
- two RMSNorms (d) and two hyper-connections (``attn_hc``, ``ffn_hc``): ``fn`` ((2 + n) n × n d), ``base`` ((2 + n) n),
  ``scale`` (3).

Outside the layers: the embedding, the final norm, ``hc_head`` (n × n d, n, 1) and the output head (tied only where
``tie_word_embeddings``). The checkpoint's ``num_nextn_predict_layers`` multi-token-prediction layers are not built
by transformers (their weights are ignored on load) and are not counted.

The cache (:mod:`estimator.layout.compressed`): a sliding layer keeps w − 1 keys and values (two tensors); a
compressed layer keeps w − 1 keys (K = V, one tensor), ⌊T/m⌋ entries, the T mod m tail and (CSA) the overlap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from estimator.errors import EstimatorError
from estimator.families import Family, Reader
from estimator.families.moe import GATED_NAMES, routed_experts
from estimator.families.schema import SIZE, count, counts, words
from estimator.layout import Attention, LayerGroup, Layout, LinearMap, ParamTensor
from estimator.layout.compressed import CompressedAttention
from estimator.layout.groups import embedding_and_final_norm, gated_mlp, grouped, rms_norms, roles

if TYPE_CHECKING:
    from collections.abc import Hashable

    from estimator.layout import Mixer
    from estimator.layout.maps import Group
    from estimator.layout.moe import MoE
    from estimator.specs import ModelSpec

SLIDING, CSA, HCA = "sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention"
_RATIO_TYPES = {0: SLIDING, 4: CSA, 128: HCA}  # the legacy per-layer compress_ratios, as transformers maps them
_DEFAULTS: dict[str, Any] = {  # DeepseekV4Config's defaults for absent keys (DeepSeek-V4-Flash's shape)
    "vocab_size": 129280,
    "hidden_size": 4096,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 43,
    "num_attention_heads": 64,
    "head_dim": 512,
    "q_lora_rank": 1024,
    "num_experts_per_tok": 6,
    "n_routed_experts": 256,
    "max_position_embeddings": 1048576,
    "hc_mult": 4,
    "sliding_window": 128,
    "o_groups": 8,
    "o_lora_rank": 1024,
    "index_n_heads": 64,
    "index_head_dim": 128,
    "index_topk": 512,
}
_RATES = {CSA: 4, HCA: 128}  # default compress_rates
_HASH_LAYERS = 3  # default_num_hash_layers: the first 3 MLPs hash-routed
# Fields transformers reads whose other values this family does not model: (value as built, why).
_AS_BUILT: dict[str, tuple[Any, str]] = {
    "n_shared_experts": (1, "transformers builds one shared MLP of moe_intermediate_size whatever it says"),
    "attention_bias": (False, "transformers' DeepSeek-V4 attention has no biases whatever it says"),
}
FIELDS = {
    "layer_types": words(SLIDING, CSA, HCA),
    "mlp_layer_types": words("hash_moe", "moe"),
    "compress_ratios": counts(0, 128),
    "compress_rates": lambda v: None if isinstance(v, dict) else "an object or null",
    "compress_rate_csa": SIZE,
    "compress_rate_hca": SIZE,
    "num_hash_layers": count(0, 100_000),
    **dict.fromkeys(("hc_mult", "o_groups", "o_lora_rank", "index_n_heads", "index_head_dim", "index_topk"), SIZE),
    "num_nextn_predict_layers": count(0, 100),
}


def _per_layer(r: Reader, key: str, values: list[Any], n: int) -> tuple[str, ...]:
    """A per-layer list cut to the layers, as ``__post_init__`` cuts it (a checkpoint's list may also cover its
    multi-token-prediction layers); a shorter one is refused."""
    if len(values) < n:
        raise EstimatorError(f"{r.path}: {key} lists {len(values)} layers, fewer than num_hidden_layers ({n}); fix it")
    return tuple(str(v) for v in values[:n])


def _layer_types(r: Reader, n: int) -> tuple[str, ...]:
    """layer_types, else the legacy compress_ratios (0, 4, 128 per layer), else 2 HCA then CSA / HCA alternating."""
    if r.config.get("layer_types") is not None:
        return _per_layer(r, "layer_types", r.config["layer_types"], n)
    if (ratios := r.config.get("compress_ratios")) is not None:
        if wrong := [x for x in ratios if x not in _RATIO_TYPES]:
            raise EstimatorError(f"{r.path}: compress_ratios holds {wrong[0]}; transformers reads only 0, 4 and 128")
        return _per_layer(r, "compress_ratios", [_RATIO_TYPES[x] for x in ratios], n)
    r.note("config.json has no layer_types: 2 HCA layers, then CSA and HCA alternating (deepseek_v4 default)")
    return (HCA,) * min(n, 2) + tuple(CSA if i % 2 else HCA for i in range(max(n - 2, 0)))


def _mlp_types(r: Reader, n: int) -> tuple[str, ...]:
    if r.config.get("mlp_layer_types") is not None:
        return _per_layer(r, "mlp_layer_types", r.config["mlp_layer_types"], n)
    hashed: int = r.get(
        "num_hash_layers", _HASH_LAYERS, f"the first {_HASH_LAYERS} MLPs hash-routed (deepseek_v4 default)"
    )
    return ("hash_moe",) * min(n, hashed) + ("moe",) * max(0, n - hashed)


def _rates(r: Reader) -> dict[str, int]:
    """compress_rates per compressed type; the legacy compress_rate_csa / compress_rate_hca override them."""
    given = r.config.get("compress_rates") or {}
    rates = {kind: given.get(kind, rate) for kind, rate in _RATES.items()}
    if unknown := set(given) - set(_RATES):
        raise EstimatorError(f"{r.path}: compress_rates names {sorted(unknown)[0]!r}; only {CSA} and {HCA} compress")
    for kind, legacy in ((CSA, "compress_rate_csa"), (HCA, "compress_rate_hca")):
        rates[kind] = r.config.get(legacy) or rates[kind]
    if any(SIZE(rate) for rate in rates.values()):
        raise EstimatorError(f"{r.path}: compress_rates {rates} must be whole numbers from 1; fix the config.json")
    return rates


def _refuse_unbuilt(r: Reader) -> None:
    for key, (built, why) in _AS_BUILT.items():
        if r.config.get(key) is not None and r.config[key] != built:
            raise EstimatorError(f"{r.path}: {key} is {str(r.config[key])[:20]}, not modelled: {why}; remove it")


def read(r: Reader) -> dict[str, Any]:
    def field(key: str) -> Any:
        return r.field(key, _DEFAULTS)

    _refuse_unbuilt(r)
    n = field("num_hidden_layers")
    if r.config.get("num_key_value_heads") not in (None, 1):
        r.note(f"num_key_value_heads {r.config['num_key_value_heads']} is not read: one shared KV head (K = V)")
    if r.config.get("num_nextn_predict_layers"):
        r.note(
            f"the checkpoint's {r.config['num_nextn_predict_layers']} multi-token-prediction layer(s) are not part "
            "of the transformers model and are not counted"
        )
    types, rates, mlp_types = _layer_types(r, n), _rates(r), _mlp_types(r, n)
    width = field("moe_intermediate_size")
    own = {key: field(key) for key in ("hc_mult", "o_groups", "o_lora_rank")}
    heads, head_dim = field("num_attention_heads"), field("head_dim")
    if (heads * head_dim) % own["o_groups"]:
        raise EstimatorError(f"{r.path}: o_groups ({own['o_groups']}) does not divide the {heads} × {head_dim} heads")
    return {
        "num_hidden_layers": n,
        "hidden_size": field("hidden_size"),
        "intermediate_size": width,
        "num_attention_heads": heads,
        "num_key_value_heads": 1,
        "head_dim": head_dim,
        "vocab_size": field("vocab_size"),
        "max_position_embeddings": field("max_position_embeddings"),
        "tie_word_embeddings": r.get("tie_word_embeddings", False),
        "mlp_bias": r.get("mlp_bias", False),
        "sliding_window": field("sliding_window"),
        "q_lora_rank": field("q_lora_rank"),
        "n_routed_experts": field("n_routed_experts"),
        "num_experts_per_tok": field("num_experts_per_tok"),
        "moe_intermediate_size": width,
        "n_shared_experts": 1,
        "mlp_layer_types": ("sparse",) * len(mlp_types),
        "index_n_heads": field("index_n_heads"),
        "index_head_dim": field("index_head_dim"),
        "index_topk": field("index_topk"),
        "family_fields": (
            *own.items(),
            ("attention_types", ",".join(types)),
            ("compress_rate_csa", rates[CSA]),
            ("compress_rate_hca", rates[HCA]),
            ("mlp_types", ",".join(mlp_types)),
        ),
    }


def attention_types(spec: ModelSpec) -> tuple[str, ...]:
    return tuple(str(spec.option("attention_types")).split(","))


def _attention(spec: ModelSpec) -> tuple[LinearMap, ...]:
    """q_a (d -> q_r), q_b (q_r -> H d_h), kv (d -> d_h), o_a (H d_h / g -> g o_r), o_b (g o_r -> d); no biases.
    V4-Flash: 4,194,304 + 33,554,432 + 2,097,152 + 33,554,432 + 33,554,432 = 106,954,752."""
    d, q_rank, dh = spec.hidden_size, spec.need("q_lora_rank"), spec.attention_head_dim
    heads, groups, o_rank = spec.attention_heads, int(spec.option("o_groups")), int(spec.option("o_lora_rank"))
    return (
        LinearMap("self_attn.q_a_proj", d, q_rank, False, roles("q"), "attention"),
        LinearMap("self_attn.q_b_proj", q_rank, heads * dh, False, roles("q"), "attention"),
        LinearMap("self_attn.kv_proj", d, dh, False, roles("k", "v"), "attention"),
        LinearMap("self_attn.o_a_proj", heads * dh // groups, groups * o_rank, False, roles("o"), "attention"),
        LinearMap("self_attn.o_b_proj", groups * o_rank, d, False, roles("o"), "attention"),
    )


def _compressor(spec: ModelSpec, kind: str) -> tuple[tuple[LinearMap, ...], tuple[ParamTensor, ...]]:
    """The compressor's maps and tensors (HCA: kv, gate d -> d_h; CSA: d -> 2 d_h and the indexer)."""
    d, dh, q_rank = spec.hidden_size, spec.attention_head_dim, spec.need("q_lora_rank")
    if kind == SLIDING:
        return (), ()
    rate, series = compress_rate(spec, kind), 2 if kind == CSA else 1
    c = "self_attn.compressor"
    maps = tuple(
        LinearMap(f"{c}.{m}", d, series * dh, False, roles("k", "v"), "attention") for m in ("kv_proj", "gate_proj")
    )
    tensors: tuple[ParamTensor, ...] = (
        ParamTensor(f"{c}.position_bias", rate * series * dh, "attention"),
        ParamTensor(f"{c}.kv_norm", dh, "norm"),
    )
    if kind == HCA:
        return maps, tensors
    ih, idim, i = spec.need("index_n_heads"), spec.need("index_head_dim"), f"{c}.indexer"
    maps += (
        *(LinearMap(f"{i}.{m}", d, 2 * idim, False, roles("k"), "attention") for m in ("kv_proj", "gate_proj")),
        LinearMap(f"{i}.q_b_proj", q_rank, ih * idim, False, roles("q"), "attention"),
        LinearMap(f"{i}.scorer.weights_proj", d, ih, False, roles("q"), "attention"),
    )
    tensors += (
        ParamTensor(f"{i}.position_bias", rate * 2 * idim, "attention"),
        ParamTensor(f"{i}.kv_norm", idim, "norm"),
    )
    return maps, tensors


def compress_rate(spec: ModelSpec, kind: str) -> int:
    return int(spec.option("compress_rate_csa" if kind == CSA else "compress_rate_hca"))


def hyper_connections(spec: ModelSpec, names: tuple[str, ...], group: Group) -> tuple[ParamTensor, ...]:
    """Each hyper-connection's fn ((2 + n) n × n d), base ((2 + n) n) and scale (3). V4-Flash, n = 4, d = 4,096:
    24 · 16,384 + 24 + 3 = 393,243 each."""
    n, d = int(spec.option("hc_mult")), spec.hidden_size
    mixes = (2 + n) * n
    return tuple(
        ParamTensor(f"{name}.{part}", numel, group)
        for name in names
        for part, numel in (("fn", mixes * n * d), ("base", mixes), ("scale", 3))
    )


def mixer(spec: ModelSpec, kind: str) -> Mixer:
    """Sliding layers: softmax attention of one KV head (keys and values kept as two tensors); compressed layers the
    compressed kind (K = V one tensor)."""
    heads, dh, window = spec.attention_heads, spec.attention_head_dim, spec.need("sliding_window")
    if kind == SLIDING:
        return Attention(heads, 1, dh, window)
    if kind == HCA:
        return CompressedAttention(heads, dh, window, compress_rate(spec, kind))
    return CompressedAttention(
        heads, dh, window, compress_rate(spec, kind), True,
        spec.need("index_n_heads"), spec.need("index_head_dim"), spec.need("index_topk"),
    )  # fmt: skip


def build(spec: ModelSpec) -> Layout:
    """One group per attention type, each layer with the shared maps, its compressor, the MoE and the hyper-connections.
    DeepSeek-V4-Flash (the class defaults): 284,325,869,015 parameters (tests/test_family_deepseek_v4.py by hand)."""
    d, width = spec.hidden_size, spec.need("moe_intermediate_size")
    experts = routed_experts(spec, "mlp.experts", GATED_NAMES, "mlp.gate", False)  # the router is a bare weight
    mlp: tuple[LinearMap | MoE, ...] = (experts, *gated_mlp("mlp.shared_experts", d, width, spec.mlp_bias))
    norms = rms_norms(d, ("input_layernorm", "post_attention_layernorm"))
    norms += (
        ParamTensor("self_attn.q_a_norm", spec.need("q_lora_rank"), "norm"),
        ParamTensor("self_attn.kv_norm", spec.attention_head_dim, "norm"),
        ParamTensor("self_attn.sinks", spec.attention_heads, "attention"),
    )
    hc = hyper_connections(spec, ("attn_hc",), "attention") + hyper_connections(spec, ("ffn_hc",), "mlp")

    def group(kind: Hashable, layers: int) -> LayerGroup:
        maps, tensors = _compressor(spec, cast(str, kind))
        return LayerGroup(
            layers, mixer(spec, cast(str, kind)), (*_attention(spec), *maps, *mlp), (*norms, *tensors, *hc)
        )

    n = int(spec.option("hc_mult"))
    head = (ParamTensor("hc_head.hc_fn", n * n * d, "norm"), ParamTensor("hc_head.hc_base", n, "norm"),
            ParamTensor("hc_head.hc_scale", 1, "norm"))  # fmt: skip
    tensors = embedding_and_final_norm(spec.vocab_size, d, spec.tie_word_embeddings) + head
    return Layout(grouped(attention_types(spec), group), tensors)


def to_config(spec: ModelSpec) -> dict[str, Any]:
    return {
        "hidden_size": spec.hidden_size,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": 1,
        "head_dim": spec.head_dim,
        "max_position_embeddings": spec.max_position_embeddings,
        "mlp_bias": spec.mlp_bias,
        "sliding_window": spec.sliding_window,
        "q_lora_rank": spec.q_lora_rank,
        "n_routed_experts": spec.n_routed_experts,
        "num_experts_per_tok": spec.num_experts_per_tok,
        "moe_intermediate_size": spec.moe_intermediate_size,
        "index_n_heads": spec.index_n_heads,
        "index_head_dim": spec.index_head_dim,
        "index_topk": spec.index_topk,
        "hc_mult": spec.option("hc_mult"),
        "o_groups": spec.option("o_groups"),
        "o_lora_rank": spec.option("o_lora_rank"),
        "layer_types": list(attention_types(spec)),
        "mlp_layer_types": str(spec.option("mlp_types")).split(","),
        "compress_rates": {CSA: spec.option("compress_rate_csa"), HCA: spec.option("compress_rate_hca")},
    }


FAMILIES = [Family(("deepseek_v4",), read, build, to_config, fields=FIELDS)]

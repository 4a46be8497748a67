"""ModelSpec: one real model's architecture, with Hugging Face ``config.json`` field names.

A spec comes from a file in ``model_specs/`` (one TOML file per model, looked up by exact name)
or from a real ``config.json`` (:func:`estimator.hf_config.spec_from_hf_config`). Both give the same
frozen type. Architecture knowledge (the layer groups a family builds, biases, norms, tied embeddings)
lives in :mod:`estimator.families`; the spec only holds the numbers and imports nothing built from it.

The spec is a plain frozen dataclass, so that a plain query never builds a validation schema; input
from outside (an edited zoo file, a config.json) is validated by :func:`validate_spec`, strictly
(whole numbers that are ints, booleans that are bools), with pydantic's schema built on first use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import cache
from typing import Annotated, Any, ClassVar, Literal

from estimator.errors import EstimatorError

ModelType = Literal[
    # dense
    "llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text", "phi3", "falcon", "gpt2",
    "olmo2", "olmo3", "phi", "starcoder2", "smollm3", "exaone4", "cohere", "cohere2", "stablelm", "gptj",
    "gpt_neox", "gpt_bigcode", "granite", "glm4", "gemma3n_text",
    "gemma", "bloom", "opt", "seed_oss", "apertus", "ministral", "ministral3", "vaultgemma", "granite_swa",
    # mixtures of experts
    "mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3", "deepseek_v32", "gpt_oss", "llama4_text",
    "phimoe", "olmoe", "glm4_moe", "granitemoe",
    "ernie4_5", "ernie4_5_moe", "hunyuan_v1_dense", "hunyuan_v1_moe", "granitemoe_swa", "cohere2_moe", "exaone_moe",
    "afmoe",
    # hybrid and recurrent
    "falcon_mamba",
    "qwen3_next", "jamba", "falcon_h1", "granitemoehybrid", "bamba", "nemotron_h", "zamba2", "lfm2", "mamba",
    "mamba2", "qwen3_5_text", "qwen3_5_moe_text", "gemma4_text", "minimax",
    "mimo_v2_flash", "kimi_linear", "longcat_flash", "deepseek_v4",
    "dbrx", "jetmoe",
]  # fmt: skip
# What each layer mixes tokens with: attention over every token, a sliding window or a chunk; a recurrent
# state (gated DeltaNet "linear_attention", "mamba", a short "conv"); both at once ("hybrid"); or nothing ("mlp").
LayerType = Literal[
    "full_attention", "sliding_attention", "chunked_attention", "linear_attention", "mamba", "hybrid", "conv", "mlp"
]
MlpType = Literal["dense", "sparse", "none"]


class _Positive:
    """A whole number above zero (the pydantic schema is built only when a spec is validated)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.int_schema(gt=0, strict=True)


class _NonNegative:
    """A whole number from zero."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.int_schema(ge=0, strict=True)


class _Strict:
    """The plain type, taken only as itself: a bool for a bool, a str for a str (no "true" or 1)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        schema = handler(source)
        schema["strict"] = True
        return schema


class _Pattern:
    """Text matching a regular expression."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.str_schema(pattern=self.pattern, strict=True)


PositiveInt = Annotated[int, _Positive()]
NonNegativeInt = Annotated[int, _NonNegative()]
Flag = Annotated[bool, _Strict()]
Text = Annotated[str, _Strict()]
Name = Annotated[str, _Pattern(r"^[a-z0-9][a-z0-9._-]*$")]
ReportedSize = Annotated[str, _Pattern(r"^[0-9]+(\.[0-9]+)?[MBT]$")]

_FALCON_ONLY = {
    "bias": False,
    "new_decoder_architecture": False,
    "parallel_attn": True,
    "num_ln_in_parallel_attn": None,
}
_MOE = ("n_routed_experts", "num_experts_per_tok", "moe_intermediate_size")
_MLA = ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim")


@dataclass(frozen=True, eq=False, repr=False)  # equality and repr below: written once, not generated per run
class ModelSpec:
    """The numbers that fix a model's parameter count and KV cache, named as in ``config.json``.

    ``head_dim`` is always explicit: where a config.json omits it, the reader applies the rule of
    that family's transformers code (hidden_size / num_attention_heads) and says so in ``notes``.
    Two specs are equal when every field is; a spec is hashable (caches are keyed by it).
    """

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}

    # Our own identity fields.
    name: Name
    display_name: Text
    source: str  # URL of the real config.json the numbers come from

    # Hugging Face config.json fields.
    model_type: ModelType
    num_hidden_layers: PositiveInt
    hidden_size: PositiveInt
    vocab_size: PositiveInt
    max_position_embeddings: PositiveInt
    tie_word_embeddings: Flag
    # None only for a model with no attention layer (Mamba) or no MLP (Mamba-1 blocks).
    intermediate_size: PositiveInt | None = None
    num_attention_heads: PositiveInt | None = None
    num_key_value_heads: PositiveInt | None = None
    head_dim: PositiveInt | None = None
    attention_bias: bool = False  # biases on the attention maps (which ones: see the family)
    mlp_bias: Flag = False  # biases on gate, up, down (llama, deepseek_v2)
    sliding_window: PositiveInt | None = None
    layer_types: tuple[LayerType, ...] | None = None
    bias: Flag = False  # falcon: biases on every linear map
    new_decoder_architecture: Flag = False  # falcon: Falcon-40B/180B layout
    parallel_attn: Flag = True  # falcon: attention and MLP side by side
    num_ln_in_parallel_attn: PositiveInt | None = None  # falcon: norms per parallel layer
    torch_dtype: Text = "bfloat16"  # dtype of the published checkpoint

    # Mixture of experts (DeepSeek's names; readers map num_local_experts, num_experts, ...).
    n_routed_experts: PositiveInt | None = None
    num_experts_per_tok: PositiveInt | None = None
    moe_intermediate_size: PositiveInt | None = None  # width of one routed expert
    n_shared_experts: PositiveInt | None = None  # deepseek: shared MLP of n × moe_intermediate_size
    shared_expert_intermediate_size: PositiveInt | None = None  # qwen2_moe: one gated shared expert
    mlp_layer_types: tuple[MlpType, ...] | None = None  # which layers route to experts

    # Multi-head latent attention (DeepSeek V2/V3).
    kv_lora_rank: PositiveInt | None = None
    q_lora_rank: PositiveInt | None = None
    qk_rope_head_dim: PositiveInt | None = None
    qk_nope_head_dim: PositiveInt | None = None
    v_head_dim: PositiveInt | None = None

    # Attention kinds beyond full and sliding.
    attention_chunk_size: PositiveInt | None = None  # chunked_attention layers attend within chunks of C (Llama 4)
    num_kv_shared_layers: NonNegativeInt | None = None  # the last S layers reuse earlier layers' KV (Gemma 3n)
    index_n_heads: PositiveInt | None = None  # DeepSeek V3.2's sparse-attention indexer
    index_head_dim: PositiveInt | None = None
    index_topk: PositiveInt | None = None  # the keys each query's main attention then attends (2,048)

    # Recurrent state: Mamba (Jamba's names; readers map each family's own), gated DeltaNet, short convolutions.
    mamba_version: PositiveInt | None = None  # 1 (Mamba) or 2 (Mamba-2, SSD)
    mamba_d_state: PositiveInt | None = None  # N
    mamba_d_conv: PositiveInt | None = None  # K, the convolution kernel
    mamba_d_inner: PositiveInt | None = None  # channels of the SSM (expand · hidden, or heads · head_dim)
    mamba_n_heads: PositiveInt | None = None  # Mamba-2 heads
    mamba_head_dim: PositiveInt | None = None  # Mamba-2 head dim P
    mamba_n_groups: PositiveInt | None = None  # Mamba-2 groups G of B and C
    mamba_dt_rank: PositiveInt | None = None  # Mamba-1 rank of the time-step projection
    mamba_conv_bias: Flag = True
    mamba_proj_bias: Flag = False
    linear_num_key_heads: PositiveInt | None = None  # gated DeltaNet (Qwen3-Next)
    linear_key_head_dim: PositiveInt | None = None
    linear_num_value_heads: PositiveInt | None = None
    linear_value_head_dim: PositiveInt | None = None
    linear_conv_kernel_dim: PositiveInt | None = None
    conv_L_cache: PositiveInt | None = None  # LFM2's short convolutions: kernel L  # noqa: N815
    conv_bias: Flag = False

    # What one family's code does that no other needs a field for (names as in its config.json); its
    # reader and build are the only ones to read it.
    family_fields: tuple[tuple[Text, Flag | int | float | Text | None], ...] = ()

    # Our own provenance fields.
    pretraining_tokens: PositiveInt | None = None
    pretraining_tokens_source: Text | None = None
    reported_params: ReportedSize | None = None
    reported_params_source: Text | None = None
    reported_active_params: ReportedSize | None = None
    reported_active_params_exclude_input_embedding: Flag = False  # DeepSeek counts so
    notes: tuple[Text, ...] = ()

    def __post_init__(self) -> None:
        """The fields agree with each other (types and ranges are :func:`validate_spec`'s)."""
        if (
            self.num_attention_heads
            and self.num_key_value_heads
            and self.num_attention_heads % self.num_key_value_heads
        ):
            raise EstimatorError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads}); check both heads counts"
            )
        if self.layer_types is not None:
            if len(self.layer_types) != self.num_hidden_layers:
                raise EstimatorError(
                    f"layer_types has {len(self.layer_types)} entries for {self.num_hidden_layers} layers; "
                    "give one per layer"
                )
            if "sliding_attention" in self.layer_types and self.sliding_window is None:
                raise EstimatorError("layer_types has sliding_attention layers but sliding_window is not set; set it")
        wrong = [f for f, default in _FALCON_ONLY.items() if getattr(self, f) != default]
        if self.model_type != "falcon" and wrong:
            raise EstimatorError(f"{', '.join(wrong)} only apply to model_type 'falcon'; remove them")
        if self.is_moe != (self.mlp_layer_types is not None) or (
            self.is_moe and any(getattr(self, f) is None for f in _MOE)
        ):
            raise EstimatorError(
                f"a mixture of experts needs all of {', '.join(_MOE)} and mlp_layer_types; give them all"
            )
        if self.n_routed_experts is not None and (self.num_experts_per_tok or 0) > self.n_routed_experts:
            raise EstimatorError(
                f"num_experts_per_tok ({self.num_experts_per_tok}) is more than the {self.n_routed_experts} routed "
                "experts; a token is sent to at most every expert"
            )
        if self.mlp_layer_types is not None and len(self.mlp_layer_types) != self.num_hidden_layers:
            raise EstimatorError(
                f"mlp_layer_types has {len(self.mlp_layer_types)} entries for {self.num_hidden_layers} layers; "
                "give one per layer"
            )
        if self.is_mla and any(getattr(self, f) is None for f in _MLA):
            raise EstimatorError(f"multi-head latent attention needs all of {', '.join(_MLA)}; give them all")

    def __eq__(self, other: object) -> bool:
        return type(other) is ModelSpec and self.__dict__ == other.__dict__

    def __hash__(self) -> int:  # a few fields suffice: equal specs agree on them
        return hash((self.name, self.model_type, self.num_hidden_layers, self.hidden_size, self.num_key_value_heads))

    def __repr__(self) -> str:
        return f"ModelSpec(name={self.name!r}, model_type={self.model_type!r}, ...)"

    def need(self, name: str) -> int:
        """A field the family's code cannot do without; one line naming it where the spec lacks it."""
        value = getattr(self, name)
        if value is None:
            raise EstimatorError(f"{self.name}: {name} is missing, which a {self.model_type} model needs; give it")
        return int(value)

    @property
    def attention_heads(self) -> int:
        """H, query heads (for a model with attention)."""
        return self.need("num_attention_heads")

    @property
    def kv_heads(self) -> int:
        """K, key-value heads (for a model with attention)."""
        return self.need("num_key_value_heads")

    @property
    def attention_head_dim(self) -> int:
        """d_h (for a model with attention)."""
        return self.need("head_dim")

    @property
    def mlp_width(self) -> int:
        """F, the dense MLP's width (for a model with one)."""
        return self.need("intermediate_size")

    @property
    def is_moe(self) -> bool:
        return self.n_routed_experts is not None

    @property
    def is_mla(self) -> bool:
        """Multi-head latent attention: the cache can hold one latent vector per token and layer."""
        return self.kv_lora_rank is not None

    def sparse_layers(self) -> int:
        """Layers whose MLP routes to experts."""
        return 0 if self.mlp_layer_types is None else self.mlp_layer_types.count("sparse")

    def layer_windows(self) -> tuple[int | None, ...]:
        """Tokens each layer's cache can hold: the sliding window, or None for full attention.

        ``layer_types`` decides per layer where the config has it; otherwise a set
        ``sliding_window`` applies to every layer, as transformers' cache does.
        """
        if self.layer_types is not None:
            return tuple(self.sliding_window if t == "sliding_attention" else None for t in self.layer_types)
        return (self.sliding_window,) * self.num_hidden_layers

    def option(self, key: str, default: Any = None) -> Any:
        """A value of ``family_fields`` (what one family's code reads), or ``default``."""
        return dict(self.family_fields).get(key, default)

    def to_dict(self, exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
        """The fields as a dict (tuples kept), without those in ``exclude``."""
        return {k: v for k, v in asdict(self).items() if k not in exclude}


FIELD_NAMES = tuple(f.name for f in fields(ModelSpec))


def _tuples(value: Any) -> Any:
    """Lists (TOML, JSON) as tuples, at any depth."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


@cache
def _adapter() -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(ModelSpec)


def validate_spec(data: dict[str, Any], where: str, fix: str) -> ModelSpec:
    """A spec from untrusted data, every field checked strictly; one line naming ``where``, the field
    and ``fix`` otherwise. Lists (TOML, JSON) become tuples first."""
    from pydantic import ValidationError

    values = {k: _tuples(v) for k, v in data.items()}
    try:
        return _adapter().validate_python(values)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise EstimatorError(f"{where}: {describe_validation_error(exc)}; {fix}") from None


def describe_validation_error(exc: Any) -> str:
    """The first problem of a pydantic ``ValidationError`` as ``field 'x': message``."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = first["msg"]
    return f"field {where!r}: {message}" if where else message

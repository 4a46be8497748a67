"""GGUF (llama.cpp) weights: the bytes of each ggml type, and the type llama.cpp's quantiser gives each tensor.

A ggml type stores a row of n values in n / B blocks of b bytes (``gguf.GGML_QUANT_SIZES``, gguf 0.19):
Q4_0 32 values in 18 bytes (an fp16 scale and 16 bytes of nibbles), Q8_0 32 in 34, Q4_K 256 in 144,
Q6_K 256 in 210, ... A row whose length B does not divide cannot take the type (llama.cpp falls back).

A file type (``llama-quantize ... Q4_K_M``) is a mix, not one type: ``llama_tensor_get_type_impl`` in
llama.cpp's ``src/llama-quant.cpp`` picks each tensor's type from its category and layer, as encoded in
:func:`tensor_type` for the llama-like tensors (attn_q/k/v/output, ffn_gate/up/down, token_embd, output):
- ``output.weight`` (and ``token_embd`` when the head is tied) Q6_K, or Q8_0 for Q8_0 files;
- attn_v and ffn_down get more bits on the layers ``use_more_bits`` picks (i < L/8, i ≥ 7L/8, and every
  third layer between) in Q4_K_M and Q5_K_M, on the first layers in Q4_K_S and Q3_K_M;
- Q2_K, Q3_K_M and Q3_K_L raise attn_output; a 70B-class model (llama.cpp's LLM_TYPE_70B: 80 layers) gets Q5_K
  for an attn_v that would be Q3_K or Q4_K;
- 1-D tensors (norms, biases) stay f32, as ``convert_hf_to_gguf.py`` writes them and the quantiser leaves them.
Rules as in llama.cpp's master (``src/llama-quant.cpp`` @ 007dbbf); files made by b2854 and b3472 match them
(tests/test_formats.py). Not modelled: an importance matrix's effect on Q4_0/Q5_0 (ffn_down of the first L/8
layers in Q4_1/Q5_1), ``--pure``, tensor-type overrides, the IQ types, experts, and Llama 3.1's 256-byte
``rope_freqs`` (the spec has no rope scaling). A real .gguf file needs none of this: its tensor bytes are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from estimator.errors import EstimatorError

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

F32_BYTES = 4

# ggml type -> (values per block, bytes per block): gguf 0.19's GGML_QUANT_SIZES (a test checks them against it)
GGML_BLOCKS: dict[str, tuple[int, int]] = {
    "F32": (1, 4),
    "F16": (1, 2),
    "BF16": (1, 2),
    "Q4_0": (32, 18),
    "Q4_1": (32, 20),
    "Q5_0": (32, 22),
    "Q5_1": (32, 24),
    "Q8_0": (32, 34),
    "Q2_K": (256, 84),
    "Q3_K": (256, 110),
    "Q4_K": (256, 144),
    "Q5_K": (256, 176),
    "Q6_K": (256, 210),
    "MXFP4": (32, 17),
}

# file type (llama-quantize's name) -> the default type of its tensors (llama_ftype_get_default_type)
MIX_DEFAULT = {
    "Q4_0": "Q4_0",
    "Q4_1": "Q4_1",
    "Q5_0": "Q5_0",
    "Q5_1": "Q5_1",
    "Q8_0": "Q8_0",
    "Q2_K": "Q2_K",
    "Q3_K_S": "Q3_K",
    "Q3_K_M": "Q3_K",
    "Q3_K_L": "Q3_K",
    "Q4_K_S": "Q4_K",
    "Q4_K_M": "Q4_K",
    "Q5_K_S": "Q5_K",
    "Q5_K_M": "Q5_K",
    "Q6_K": "Q6_K",
}
# llama_tensor_type_fallback: a row that a 256-block type cannot split takes a 32-block type, then F16
FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}

Category = Literal[
    "token_embd", "output", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"
]


def ggml_tensor_bytes(row: int, rows: int, ggml_type: str) -> int:
    """rows × (row / B) × b bytes: a tensor of ``rows`` rows of ``row`` values (GGUF's ne[0] = row) in a
    ggml type of blocks of B values in b bytes. Llama 3 8B's attn_q (4,096 × 4,096) in Q4_K:
    4,096 × 16 × 144 = 9,437,184 bytes (4.5 bits per weight)."""
    block, size = GGML_BLOCKS[ggml_type]
    if row % block:
        raise EstimatorError(f"a row of {row:,} values does not split into {ggml_type} blocks of {block}; use another")
    return rows * (row // block) * size


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama.cpp's ``use_more_bits``: the first eighth, the last eighth and every third layer between.
    32 layers: 0-3, 6, 9, 12, 15, 18, 21, 24, 27, 28-31 (16 of 32)."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


@dataclass(frozen=True)
class MixModel:
    """What the quantiser's rule reads of a model: layers, query heads per KV head (n_gqa), the 70B class,
    and whether the output head is tied to the embedding (then token_embd takes the head's type)."""

    layers: int
    n_gqa: int
    is_70b: bool
    tied: bool


def mix_type(mix: str, category: Category, i_layer: int, model: MixModel) -> str:
    """The ggml type ``llama_tensor_get_type_impl`` gives a tensor of ``category`` on layer ``i_layer`` in
    file type ``mix`` (llama-like tensors, no experts, no importance-matrix rules). Llama 3 8B in Q4_K_M:
    attn_v and ffn_down of layer 0 Q6_K, of layer 4 Q4_K; output Q6_K; token_embd Q4_K."""
    default = MIX_DEFAULT[mix]
    n = model.layers
    if category == "output" or (model.tied and category == "token_embd"):
        return "Q8_0" if default == "Q8_0" else "Q6_K"
    if category == "attn_v":
        new = default
        if mix == "Q2_K":
            new = "Q4_K" if model.n_gqa >= 4 else "Q3_K"
        elif mix == "Q3_K_M":
            new = "Q5_K" if i_layer < 2 else "Q4_K"
        elif mix == "Q3_K_L":
            new = "Q5_K"
        elif mix in ("Q4_K_M", "Q5_K_M") and use_more_bits(i_layer, n):
            new = "Q6_K"
        elif mix == "Q4_K_S" and i_layer < 4:
            new = "Q5_K"
        if model.is_70b and new in ("Q3_K", "Q4_K"):
            new = "Q5_K"
        return new
    if category == "ffn_down":
        if mix == "Q2_K":
            return "Q3_K"
        if mix == "Q3_K_M":
            return "Q5_K" if i_layer < n // 16 else "Q4_K"
        if mix == "Q3_K_L":
            return "Q5_K"
        if mix in ("Q4_K_M", "Q5_K_M") and use_more_bits(i_layer, n):
            return "Q6_K"
        if mix == "Q4_K_S" and i_layer < n // 8:
            return "Q5_K"
        return default
    if category == "attn_output":
        return {"Q2_K": "Q3_K", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K"}.get(mix, default)
    return default


def fitted_type(ggml_type: str, row: int) -> str:
    """``tensor_type_fallback``: the type itself when B divides the row, else its 32-block fallback, else F16."""
    if row % GGML_BLOCKS[ggml_type][0] == 0:
        return ggml_type
    fallback = FALLBACK.get(ggml_type, "F16")
    return fallback if row % GGML_BLOCKS[fallback][0] == 0 else "F16"


def mix_tensor_bytes(mix: str, category: Category, i_layer: int, model: MixModel, row: int, rows: int) -> int:
    """Bytes of one 2-D tensor (``rows`` × ``row``) of a GGUF file of type ``mix``."""
    if mix not in MIX_DEFAULT:
        raise EstimatorError(f"unknown GGUF file type {mix!r}; use one of {', '.join(MIX_DEFAULT)}")
    chosen = mix_type(mix, category, i_layer, model)
    head = category == "output" or (model.tied and category == "token_embd")
    if head and row % GGML_BLOCKS[MIX_DEFAULT[mix]][0]:
        chosen = "Q8_0"  # the head's rule checks the default type's block first: a row it does not split takes Q8_0
    return ggml_tensor_bytes(row, rows, fitted_type(chosen, row))


GGUF_FAMILIES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text"})
SEVENTY_B = frozenset({"llama", "mistral", "qwen2"})  # llama.cpp's LLM_TYPE_70B: 80 layers (llama: and K < H)
CATEGORIES: dict[frozenset[str], Category] = {
    frozenset({"q"}): "attn_q",
    frozenset({"k"}): "attn_k",
    frozenset({"v"}): "attn_v",
    frozenset({"o"}): "attn_output",
    frozenset({"gate"}): "ffn_gate",
    frozenset({"up"}): "ffn_up",
    frozenset({"down"}): "ffn_down",
}


def mix_model(spec: ModelSpec) -> MixModel:
    """The quantiser's view of ``spec``: L, n_gqa = H // K, the 70B class, a tied head."""
    heads, kv = spec.attention_heads, spec.kv_heads
    layers = spec.num_hidden_layers
    is_70b = layers == 80 and spec.model_type in SEVENTY_B and (spec.model_type == "qwen2" or kv < heads)
    return MixModel(layers, heads // kv, is_70b, spec.tie_word_embeddings)


def gguf_mix_bytes(spec: ModelSpec, mix: str) -> int:
    """Bytes of every tensor of ``spec`` in a GGUF file of type ``mix`` (tensor data only: the file adds its
    metadata, tokenizer included). Per layer i: each linear map in the type :func:`mix_type` gives it, its bias
    and the norms f32; then token_embd (V rows of d), output unless tied, output_norm f32.

    Llama 3 8B in Q4_K_M: 32 layers of 122,716,160 bytes at Q4_K (norms 32,768 f32), plus 16,220,160 on each of
    the 16 layers ``use_more_bits`` picks (attn_v and ffn_down in Q6_K), token_embd 295,501,824 (Q4_K), output
    430,940,160 (Q6_K), output_norm 16,384: 4,912,898,048 bytes."""
    from estimator.architecture import layout_of

    if spec.model_type not in GGUF_FAMILIES:
        raise EstimatorError(
            f"llama.cpp's per-tensor GGUF types are implemented for {', '.join(sorted(GGUF_FAMILIES))}, not "
            f"{spec.model_type}; pass the .gguf file itself with --config to use its own tensor bytes"
        )
    layout = layout_of(spec)
    maps = {tuple((m.name, m.d_in, m.d_out, m.bias, m.roles, m.count) for m in g.linears()) for g in layout.groups}
    if len(maps) != 1 or any(m.roles not in CATEGORIES or m.count != 1 for m in layout.groups[0].linears()):
        raise EstimatorError(
            f"{spec.name}: its layers are not the uniform llama-like maps the GGUF rule covers; pass the .gguf file"
        )
    model = mix_model(spec)
    total = 0
    for i in range(model.layers):
        for m in layout.groups[0].linears():
            total += mix_tensor_bytes(mix, CATEGORIES[m.roles], i, model, m.d_in, m.d_out)
            total += m.d_out * F32_BYTES if m.bias else 0
    for tensor in layout.other_tensors():
        if tensor.group == "norm":
            total += tensor.params * F32_BYTES
        elif tensor.group in ("embedding", "lm_head"):
            category: Category = "token_embd" if tensor.group == "embedding" else "output"
            total += mix_tensor_bytes(mix, category, 0, model, spec.hidden_size, tensor.numel // spec.hidden_size)
        else:
            raise EstimatorError(f"{spec.name}: tensor {tensor.name} has no GGUF rule here; pass the .gguf file")
    return total

"""Serving engines as presets: what each takes from a GPU before its KV pool, and how it sizes the pool.

Every engine budgets a share of the memory torch reports for the device (not the marketed size: an
H100 80GB reports 79.19 GiB), loads the weights, runs a profiling pass whose peak it keeps in reserve,
counts the memory allocated outside torch (the CUDA context is already there; NCCL and all-reduce buffers
come with tensor parallelism), and gives the rest to the KV cache in blocks:

    pool = ⌊fraction · reported⌋ − weights − profile peak − non-torch memory − workspaces
    blocks = ⌊pool / (block · bytes per token over all layers)⌋,  tokens = blocks · block,
    maximum concurrency = blocks / ⌈max_model_len / block⌉.

Each term is a row of its own (:class:`Reserve`), with where it comes from. The rules per engine and the
published start-up logs they were checked against are in ``docs/engines.md`` and
``tests/data/published/serving.toml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from estimator.errors import EstimatorError
from estimator.memory.formats import FP16_BYTES, FP32_BYTES

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

GiB = 2**30


class Engine(StrEnum):
    """A serving engine's memory rule, at the version stated in its description."""

    vllm = "vllm"
    vllm_011 = "vllm-0.11"
    sglang = "sglang"
    tgi = "tgi"
    llama_cpp = "llama.cpp"
    none = "none"

    def describe(self) -> str:
        return ENGINE_WORDS[self]

    @property
    def is_vllm(self) -> bool:
        return self in (Engine.vllm, Engine.vllm_011)


ENGINE_WORDS = {
    Engine.vllm: "vLLM 0.19 (V1 engine): pool = gpu_memory_utilization x reported - weights - profile peak - "
    "non-torch memory",
    Engine.vllm_011: "vLLM 0.11 (V1 engine): the same rule as 0.19, with 0.11's heavier sampler warm-up and lighter "
    "non-torch memory",
    Engine.sglang: "SGLang 0.4.6: pool = mem_fraction_static x (reported - start-up memory) - weights, in tokens",
    Engine.tgi: "Text Generation Inference: the memory left after a warm-up prefill (not modelled)",
    Engine.llama_cpp: "llama.cpp: n_ctx cells and a compute buffer (not modelled)",
    Engine.none: "no engine: the components alone, no reserve (the budget rule of --memory-fraction)",
}


@dataclass(frozen=True, kw_only=True)
class Knobs:
    """The engine settings that move its pool: budget fraction, block size, scheduler limits, max_model_len."""

    memory_fraction: float
    block_tokens: int
    max_num_seqs: int
    max_num_batched_tokens: int
    max_model_len: int
    cuda_graphs: bool = True


@dataclass(frozen=True, kw_only=True)
class Reserve:
    """One term an engine takes before its pool, per GPU: what it is, its bytes, where the rule comes from."""

    label: str
    bytes: int
    source: str


FULL_ROTARY = frozenset(
    {
        "llama",
        "mistral",
        "mixtral",
        "qwen2",
        "qwen2_moe",
        "qwen3",
        "qwen3_moe",
        "gemma",
        "gemma2",
        "gemma3_text",
        "phi3",
        "granite",
        "olmo2",
        "smollm3",
        "exaone4",
        "gpt_oss",
        "glm4_moe",
    }
)


def rope_cache_bytes(spec: ModelSpec) -> int | None:
    """vLLM's rotary embedding keeps a cos/sin cache of max_position_embeddings × rotary_dim in the model's
    dtype, loaded with the weights ("Model loading took" counts it). Llama 3.1 8B: 131,072 · 128 · 2 =
    33,554,432 bytes (0.03125 GiB: 8,030,261,248 · 2 bytes = 14.9576 GiB of weights print as 14.9888).
    The rotary width is qk_rope_head_dim for MLA and head_dim for the families that rotate whole heads;
    None (not counted, said so) for the others."""
    if spec.kv_lora_rank is not None and spec.qk_rope_head_dim:
        return spec.max_position_embeddings * spec.qk_rope_head_dim * FP16_BYTES
    if spec.model_type in FULL_ROTARY and spec.head_dim:
        return spec.max_position_embeddings * spec.head_dim * FP16_BYTES
    return None


def sampler_rows(knobs: Knobs) -> int:
    """Dummy requests of the sampler's warm-up: min(max_num_seqs, max_num_batched_tokens)."""
    return min(knobs.max_num_seqs, knobs.max_num_batched_tokens)


def check_knobs(knobs: Knobs) -> None:
    if not 0 < knobs.memory_fraction <= 1:
        raise EstimatorError(
            f"memory fraction {knobs.memory_fraction:g} must be in (0, 1]; vLLM's default is 0.9, SGLang's ~0.88"
        )
    if knobs.block_tokens < 0 or knobs.max_num_seqs < 1 or knobs.max_num_batched_tokens < 1:
        raise EstimatorError("--block-size must be 0 or more, --max-num-seqs and --chunk at least 1; give e.g. 16")
    if knobs.max_model_len < 1:
        raise EstimatorError("--max-model-len must be at least 1 token; give e.g. 8192")


def fp32_bytes(elements: int) -> int:
    return elements * FP32_BYTES


@dataclass(frozen=True, kw_only=True)
class Pool:
    """What an engine leaves for its KV cache on one GPU, and what that holds."""

    engine: Engine
    knobs: Knobs
    reported_bytes: int  # the memory torch reports for the device
    budget_bytes: int  # ⌊fraction · reported⌋
    weights_bytes: int
    reserves: tuple[Reserve, ...]
    blocks: int | None  # vLLM's "# GPU blocks" (None: the engine does not page, or the layout is not modelled)
    tokens: int | None  # "GPU KV cache size: N tokens" (None: not modelled for this cache)
    max_concurrency: float | None  # sequences of max_model_len at once

    @property
    def pool_bytes(self) -> int:
        """The budget less the weights and every reserve (negative: the engine would refuse to start)."""
        return self.budget_bytes - self.weights_bytes - sum(r.bytes for r in self.reserves)

    @property
    def starts(self) -> bool:
        """Whether the engine starts: a positive pool that holds one request of max_model_len."""
        return self.pool_bytes > 0 and (self.max_concurrency is None or self.max_concurrency >= 1)

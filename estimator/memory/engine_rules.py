"""Each engine's rule for its KV pool, as its code states it, with the terms its start-up logs print.

vLLM (``Worker.determine_available_memory``): requested = utilization · total (torch's ``mem_get_info``);
non-KV = weights ("Model loading took") + the torch peak of ``profile_run`` + non-torch memory (NCCL,
custom all-reduce, cuBLAS workspaces) allocated since start-up; pool = requested − non-KV. The profile run
is one forward pass over ``max_num_batched_tokens`` tokens (V0: ``max(max_model_len, 2048)`` while chunked
prefill is off, up to 32K) then the sampler over min(max_num_seqs, tokens) dummy requests, whose logits are
gathered whole on every GPU (so that term does not shrink with tensor parallelism). Defaults (V1,
``EngineArgs.get_batch_defaults``, OpenAI server): 8,192 batched tokens and 1,024 sequences on a GPU of
≥ 70 GiB that is not an A100, else 2,048 and 256; V0: 256 sequences.

SGLang 0.4.6 (``ModelRunner.profile_max_num_token``): rest = available after weights − total · (1 −
mem_fraction_static), tokens = rest / cell (every layer's K and V per token), where total is the memory free
once the CUDA context and NCCL are up: rest = fraction · (reported − start-up) − weights. mem_fraction_static
0.88 at TP 1, 0.87 at 2, 0.85 at 4, 0.81 at 8 on GPUs up to 80 GB.

TGI and llama.cpp are refused: TGI sizes its blocks from the memory free after a warm-up prefill, which its
logs do not break down (a 70B on 2 x A100 leaves a third of what its weights and cache predict); llama.cpp's
cache is exact (n_ctx cells) but its compute buffer, which decides the fit, has no closed form.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from estimator.errors import EstimatorError
from estimator.memory.engines import Engine, Knobs, Pool, Reserve, rope_cache_bytes
from estimator.memory.formats import FP16_BYTES
from estimator.memory.paged import block_layout
from estimator.memory.serving import ServeSetup, cache_bytes_per_gpu, prefill_activation_bytes
from estimator.memory.weights import weight_bytes_per_gpu

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

GiB = 2**30
LARGE_GPU_BYTES = 70 * GiB  # vLLM's threshold for larger scheduler defaults (A100s excluded)
VLLM_SOURCE = "vllm/v1/worker/gpu_worker.py determine_available_memory; vllm/engine/arg_utils.py get_batch_defaults"
SGLANG_FRACTION = ((8, 0.81), (4, 0.85), (2, 0.87), (1, 0.88))  # server_args.py: mem_fraction_static by TP
# Memory in use before an engine loads anything, per GPU (the CUDA context; NCCL's communicators with tensor
# parallelism): vLLM 0.19 prints "Free memory on device (78.68/79.19 GiB) on startup" on one H100, 77.66/79.19
# at TP 2 and 77.64/79.19 at TP 4 (llm-d's sweep).
START_BYTES = ((2, 1_664_000_000), (1, 548_000_000))
PROFILE_REST_BYTES = 132_000_000  # see profile_peak_bytes


@dataclass(frozen=True, kw_only=True)
class VllmRelease:
    """What differs between vLLM releases in the pool rule: the bytes per logit the sampler's warm-up holds
    beyond the model-dtype logits, and the non-torch memory per GPU by TP size, each read from that release's
    own DEBUG start-up logs (which print the torch peak and the non-torch increase apart)."""

    version: str
    sampler_extra_bytes: float
    non_torch: tuple[tuple[int, int], ...]  # (at least this TP, bytes), largest TP first
    source: str


RELEASES = {
    "vllm": VllmRelease(
        version="0.19",
        sampler_extra_bytes=12,
        non_torch=((4, 2_287_000_000), (2, 2_223_000_000), (1, 268_000_000)),
        source="llm-d planner's vLLM 0.19.0 sweep on H100 80GB HBM3: 1.89 GiB profile peak for Llama 3.1 8B at TP 1, "
        "2 and 4; non-torch 0.25, 2.07, 2.13 GiB",
    ),
    "vllm-0.11": VllmRelease(
        version="0.11",
        sampler_extra_bytes=35.5,
        non_torch=((2, 585_000_000), (1, 140_000_000)),
        source="llm-d-benchmark's vLLM 0.11.0 memory table on H100: 4.76 GiB profile peak for Llama 3.1 8B, "
        "5.64 for Qwen3-32B, 7.38 for gpt-oss-20b (37.5 bytes per logit in all); non-torch 0.13-0.14 GiB at TP 1, "
        "0.54-0.55 at TP 2",
    ),
}
MOE_CHUNK_TOKENS = 32768  # VLLM_FUSED_MOE_CHUNK_SIZE: the fused-MoE workspace is sized for at most this many tokens
LLM_D = "llm-d planner's vLLM 0.19.0 sweep on H100 80GB HBM3 (tests/data/published/serving.toml)"


def default_knobs(engine: Engine, reported_bytes: int, device_name: str, max_model_len: int, tp: int) -> Knobs:
    """The engine's own defaults for this device and context length."""
    large = reported_bytes >= LARGE_GPU_BYTES and "a100" not in device_name.lower()
    if engine.value in RELEASES:
        seqs, batched = (1024, 8192) if large else (256, 2048)
        return Knobs(
            memory_fraction=0.9,
            block_tokens=16,
            max_num_seqs=seqs,
            max_num_batched_tokens=batched,
            max_model_len=max_model_len,
        )
    if engine is Engine.sglang:
        fraction = next(f for at_least, f in SGLANG_FRACTION if tp >= at_least)
        return Knobs(
            memory_fraction=fraction,
            block_tokens=1,
            max_num_seqs=4096,
            max_num_batched_tokens=8192,
            max_model_len=max_model_len,
        )
    if engine is Engine.none:
        return Knobs(
            memory_fraction=0.9,
            block_tokens=16,
            max_num_seqs=1,
            max_num_batched_tokens=8192,
            max_model_len=max_model_len,
        )
    raise EstimatorError(refusal(engine))


def refusal(engine: Engine) -> str:
    """Why an engine's pool is not modelled, and what to use instead."""
    why = {
        Engine.tgi: "TGI sizes its blocks from the memory left after a warm-up prefill, which its logs do not "
        "break down",
        Engine.llama_cpp: "llama.cpp's cache is exactly n_ctx cells, but its compute buffer, which decides the fit, "
        "has no closed form here",
    }.get(engine, "its rule is not modelled")
    return f"--engine {engine.value}: {why}; use vllm, sglang or none"


def sampler_bytes(spec: ModelSpec, knobs: Knobs, logits_bytes: int, release: VllmRelease = RELEASES["vllm"]) -> int:
    """The sampler's warm-up in vLLM's profile run: R = min(max_num_seqs, max_num_batched_tokens) dummy
    requests, each a row of V logits in the model's dtype (b bytes) plus 12 bytes per logit of the sampler's
    fp32 and int64 temporaries (an fp32 copy and the sort's int64 indices): R · V · (b + 12). The logits are
    gathered whole on every GPU, so this does not shrink with tensor parallelism. Llama 3.1 8B in bf16,
    R = 1,024: 1,024 · 128,256 · 14 = 1,838,641,152 bytes (1.71 GiB); llm-d's log prints a profile peak of
    1.89 GiB, and 2.21 GiB in fp32 (1,024 · 128,256 · 16 = 1.96 GiB): the 2 bytes per logit the dtype adds."""
    per_logit = logits_bytes + release.sampler_extra_bytes
    return round(min(knobs.max_num_seqs, knobs.max_num_batched_tokens) * spec.vocab_size * per_logit)


def moe_workspace_bytes(spec: ModelSpec, setup: ServeSetup, knobs: Knobs) -> int:
    """vLLM's fused-MoE workspaces, kept allocated across the profile run: for M = min(batched tokens,
    32,768) tokens and k routed experts each, one buffer of M · k · max(2F'/t, d) (the gate-and-up output,
    reused for the down output) and one of M · k · F'/t, in 16 bits. DeepSeek-V2-Lite (k 6, F' 1,408, d
    2,048), M 8,192: 8,192 · 6 · (2,816 + 1,408) · 2 = 415,236,096 bytes (0.387 GiB; llm-d's log: its profile
    peak is 0.38 GiB above the sampler's). 0 for a dense model and for MXFP4 experts (gpt-oss), whose kernel
    keeps no such buffer (llm-d's log: no excess)."""
    if not spec.is_moe or setup.weights.value == "mxfp4" or not spec.moe_intermediate_size:
        return 0
    tokens = min(knobs.max_num_batched_tokens, MOE_CHUNK_TOKENS)
    k, f = spec.num_experts_per_tok or 1, spec.moe_intermediate_size // setup.tp
    return tokens * k * (max(2 * f, spec.hidden_size) + f) * FP16_BYTES


def non_torch_bytes(tp: int, release: VllmRelease = RELEASES["vllm"]) -> int:
    """Memory allocated outside torch since start-up, per GPU (vLLM prints it as non_torch_memory): cuBLAS
    and CUDA-graph pools alone at TP 1 (0.25 GiB), NCCL and custom all-reduce buffers beyond (2.07 GiB at TP 2,
    2.13 at TP 4, in llm-d's sweep); larger TP sizes are taken as TP 4's (not measured)."""
    return next(b for at_least, b in release.non_torch if tp >= at_least)


def profile_peak_bytes(
    spec: ModelSpec, setup: ServeSetup, knobs: Knobs, release: VllmRelease = RELEASES["vllm"]
) -> tuple[int, int, int]:
    """(forward, sampler, rest) of vLLM's profile run on one GPU: the torch peak is the larger of one forward
    pass over N = max_num_batched_tokens (:func:`prefill_activation_bytes`) and the sampler's warm-up plus what
    the run holds beside it: the forward's output, N · d · b (the hidden states stay alive while the sampler
    runs), and 132,000,000 bytes more. That constant is fitted, not derived: it is what llm-d's vLLM 0.19.0
    logs leave after the sampler and the hidden states for 11 dense models and dtypes (0.11-0.26 GiB in all;
    a least-squares fit of a + c · N · d · b gives a = 0.12 GiB, c = 1.02). Llama 3.1 8B, bf16:
    1,838,641,152 + 8,192 · 4,096 · 2 + 132,000,000 = 2,037,749,760 bytes (1.90 GiB; printed: 1.89)."""
    forward = prefill_activation_bytes(spec, replace(setup, chunk_tokens=knobs.max_num_batched_tokens))
    b = setup.weights.float_bytes
    rest = knobs.max_num_batched_tokens * spec.hidden_size * b + PROFILE_REST_BYTES
    return forward, sampler_bytes(spec, knobs, b, release), rest


def start_bytes(tp: int) -> int:
    """Memory in use per GPU before the engine loads anything: the CUDA context, and NCCL's with TP ≥ 2."""
    return next(b for at_least, b in START_BYTES if tp >= at_least)


def sglang_reserves(tp: int, knobs: Knobs) -> tuple[Reserve, ...]:
    """SGLang budgets mem_fraction_static of the memory free at start-up, so the fraction of what was in use
    then is a reserve: f · start-up. Qwen3-235B-A22B in fp8 on 4 H100s at 0.93: 0.93 · 1,664,000,000 =
    1,547,520,000 bytes."""
    return (
        Reserve(
            label="CUDA context and NCCL before start-up (times the fraction)",
            bytes=round(knobs.memory_fraction * start_bytes(tp)),
            source="sglang model_runner.py profile_max_num_token; vLLM 0.19's 'Free memory on device' lines",
        ),
    )


def vllm_reserves(
    spec: ModelSpec, setup: ServeSetup, knobs: Knobs, release: VllmRelease = RELEASES["vllm"]
) -> tuple[Reserve, ...]:
    """vLLM's terms before its pool: the RoPE cache loaded with the weights, the profile run's torch peak,
    the fused-MoE workspaces, non-torch memory."""
    rows = []
    rope = rope_cache_bytes(spec)
    if rope:
        rows.append(
            Reserve(
                label="RoPE cos/sin cache, loaded with the weights",
                bytes=rope,
                source="rotary_embedding.py: max_position_embeddings x rotary_dim, model dtype",
            )
        )
    forward, sampler, rest = profile_peak_bytes(spec, setup, knobs, release)
    requests = min(knobs.max_num_seqs, knobs.max_num_batched_tokens)
    rows.append(
        Reserve(
            label=f"profile peak: the larger of a forward pass over {knobs.max_num_batched_tokens:,} tokens "
            f"({forward / GiB:.2f} GiB) and the sampler over {requests:,} requests with the rest "
            f"({(sampler + rest) / GiB:.2f} GiB)",
            bytes=max(forward, sampler + rest),
            source=f"gpu_model_runner.py profile_run, _dummy_sampler_run; {release.source}",
        )
    )
    if workspace := moe_workspace_bytes(spec, setup, knobs):
        rows.append(
            Reserve(label="fused-MoE workspaces", bytes=workspace, source=f"fused_moe.py intermediate caches; {LLM_D}")
        )
    rows.append(
        Reserve(
            label="non-torch memory (NCCL, all-reduce, cuBLAS)",
            bytes=non_torch_bytes(setup.tp, release),
            source=f"memory_profiling non_torch_increase; {release.source}",
        )
    )
    return tuple(rows)


def plan_pool(
    spec: ModelSpec,
    setup: ServeSetup,
    engine: Engine,
    knobs: Knobs,
    reported_bytes: int,
    extra: tuple[Reserve, ...] = (),
    draft: ModelSpec | None = None,
    stored_bytes: int | None = None,
    outside_bytes: int = 0,
) -> Pool:
    """The pool ``engine`` leaves on one GPU of ``reported_bytes`` under ``knobs`` (see the module docstring),
    less the ``extra`` rows of serving options (LoRA slots, a draft model, whose cache joins the blocks), and
    what it holds: blocks, tokens and concurrency as the engine prints them. ``stored_bytes``: the weights as a
    GGUF file stores them (one GPU), instead of the format's count. ``outside_bytes``: the weights on one GPU of
    a multimodal checkpoint's parts outside the language model (``--part all``), loaded with the rest."""
    at = replace(setup, block_tokens=knobs.block_tokens, chunk_tokens=knobs.max_num_batched_tokens)
    if engine.value in RELEASES:
        reserves = vllm_reserves(spec, at, knobs, RELEASES[engine.value])
    elif engine is Engine.sglang:
        reserves = sglang_reserves(setup.tp, knobs)
    elif engine is Engine.none:
        reserves = (Reserve(label="stated overhead (--overhead)", bytes=setup.overhead_bytes, source="--overhead"),)
    else:
        raise EstimatorError(refusal(engine))
    reserves = (*reserves, *extra)
    weights = stored_bytes
    if weights is None:
        weights = weight_bytes_per_gpu(spec, setup.weights, setup.tp, expert_padding=setup.expert_padding)
    elif setup.tp != 1:
        raise EstimatorError("a GGUF file's weights are counted on one GPU; use --tp 1")
    weights += outside_bytes
    budget = int(reported_bytes * knobs.memory_fraction)
    pool = budget - weights - sum(r.bytes for r in reserves)
    block = max(1, knobs.block_tokens)
    layout = block_layout(spec, setup.kv, setup.tp, block, draft)
    if engine is Engine.sglang and layout is not None and any(span is not None for span in layout.spans):
        layout = None  # SGLang keeps windowed layers in a pool of their own (not modelled): no token count
    blocks = tokens = concurrency = None
    if layout is not None:
        blocks, tokens = layout.blocks(pool), layout.tokens(pool, block)
        concurrency = layout.concurrency(pool, knobs.max_model_len, knobs.max_num_batched_tokens, block)
    elif (one := sum(cache_bytes_per_gpu(m, knobs.max_model_len, at) for m in (spec, draft) if m is not None)) > 0:
        concurrency = max(0, pool) / one
    return Pool(engine=engine, knobs=knobs, reported_bytes=reported_bytes, budget_bytes=budget, weights_bytes=weights,
                reserves=reserves, blocks=blocks, tokens=tokens, max_concurrency=concurrency)  # fmt: skip


def mxfp4_backend(device_name: str) -> str:
    """vLLM 0.19's MXFP4 MoE backend on a device: OpenAI's Triton kernels on Hopper, FlashInfer's TRT-LLM kernels
    on Blackwell, Marlin elsewhere (GPUs without native FP4 support, e.g. the A100 and L40S)."""
    name = device_name.lower()
    if "h100" in name or "h200" in name:
        return "triton"
    if "b200" in name or "b300" in name:
        return "flashinfer-trtllm"
    return "marlin"

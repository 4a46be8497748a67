"""The assumptions under the serving answer, one sentence each, with where each rule comes from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.memory.engine_rules import RELEASES

if TYPE_CHECKING:
    from estimator.memory.engines import Pool
    from estimator.memory.formats import WeightFormat
    from estimator.specs import ModelSpec

GiB = 2**30


def serving_assumptions(
    spec: ModelSpec, pool: Pool, weights: WeightFormat, reported: bool, options: dict[str, Any], draft: Any
) -> list[str]:
    """Every assumption behind the tables."""
    k = pool.knobs
    words = [f"Engine: {pool.engine.describe()}."]
    if pool.engine.is_vllm:
        words.append(
            f"vLLM's scheduler: max_num_seqs {k.max_num_seqs:,} and max_num_batched_tokens "
            f"{k.max_num_batched_tokens:,} (its API server's defaults on this device: 1,024 and 8,192 on a GPU of "
            "at least 70 GiB that is not an A100, else 256 and 2,048), blocks of "
            f"{k.block_tokens} tokens, max_model_len {k.max_model_len:,}. The profile peak, fused-MoE workspaces "
            "and non-torch memory were read from that release's own start-up logs "
            f"({RELEASES[pool.engine.value].source}); CUDA "
            "graphs are captured after the pool is sized and come out of the 1 - utilization headroom (0.91 GiB "
            "for Llama 3.1 8B in that sweep), so they are not deducted."
        )
    if not reported:
        words.append(
            "Device memory: no engine log of what torch reports for this device was found, so its installed "
            "size is budgeted, a little more than an engine sees (an H100 80GB reports 79.19 GiB of 80); give "
            "--memory with what `torch.cuda.mem_get_info()` reports for exact numbers."
        )
    if options.get("memory") is not None:
        from estimator.memory.sizes import both_units

        words.append(f"--memory {options['memory']} read as {both_units(pool.reported_bytes)}.")
    words.append(
        f"Weights: the linear maps in {weights.describe()}; embeddings, head, norms and routers in 16 bits. "
        "Tensor parallelism splits q, o, the MLP and experts by t, k and v by KV head (max(1, K/t) per GPU), the "
        "vocabulary padded to 64 rows; norms, routers and MLA's down-projections are replicated."
    )
    if pool.blocks is None and pool.engine.is_vllm:
        words.append(
            "Cache layout: this model's layers do not page alike (a recurrent state, or layers of unequal page "
            "size), which vLLM pads in ways not modelled here: blocks and tokens are not given, and a sequence "
            "takes the bytes of its cache."
        )
    if draft is not None:
        words.append(
            f"Draft model {draft.display_name}: its weights on every GPU and its cache in every sequence's blocks."
        )
    if options.get("kv_offload"):
        words.append(
            "CPU tier: offloaded blocks at the GPU cache's bytes per token, per GPU (vLLM's native offloading, "
            "LMCache); a hit is copied back to the GPU pool before attention reads it."
        )
    window = spec.max_position_embeddings
    words.append(
        f"Context window: {window:,} tokens (max_position_embeddings); a max_model_len beyond it is refused by "
        "vLLM unless VLLM_ALLOW_LONG_MAX_MODEL_LEN is set, so such a row never fits, and the longest context "
        "stops at it."
    )
    words.append(
        "Most sequences: how many of --tokens each fit in the pool at once; longest context: the largest T whose "
        "batch fits."
    )
    return words


def outside_weights_words(parts: dict[str, int], weights: WeightFormat) -> str:
    """The assumption behind the weights of a multimodal checkpoint's parts outside its language model
    (``--part all``; ``parts``: name -> parameters, as :func:`estimator.whole_model.whole_model_of` counts them)."""
    width = "fp32" if weights.float_bytes == 4 else "16 bits"
    listed = " and ".join(f"{name} {count:,}" for name, count in parts.items())
    return (
        f"Whole model (--part all): the parts outside the language model ({listed} parameters) are loaded with "
        f"the weights, in {width} (quantised checkpoints leave them unquantised), split evenly over the "
        "tensor-parallel GPUs as vLLM shards the vision tower's attention and MLP maps (its default "
        "mm_encoder_tp_mode 'weights'; 'data' keeps a whole copy on each GPU; the few norms and embeddings it "
        "replicates are counted once). They hold no KV cache; the encoder's activations while vLLM profiles it "
        "with dummy images at start-up are not counted."
    )

"""Published fine-tuning memory measurements (tests/data/published/training.toml; how each was taken:
docs/training-measurements.md) against the training peak (#21).

Every row is either reproduced here, within 5% (or its own tolerance), or is a stated miss whose error this test
pins to within one percentage point (so a change in the estimate shows), or is listed as not modelled with the
reason. A new row in the data fails :func:`test_every_row_is_accounted_for` until it is placed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from estimator.memory.activations import Checkpointing, lora_ranks
from estimator.memory.loss import Loss, loss_backward_bytes
from estimator.memory.peak import longest_tokens
from estimator.memory.training import TrainSetup, adapter_tensor_sizes
from estimator.query.vocabulary import Method
from estimator.stores.targets import resolve_targets
from estimator.zoo import load_spec

ROWS = {
    row["id"]: row for row in tomllib.loads((Path(__file__).parent / "data/published/training.toml").read_text())["run"]
}
GB = 10**9  # the Unsloth tables say "GB"; read as printed (GiB would make every 8B miss larger)

# Unsloth's Hugging Face + FA2 baseline: QLoRA r=32 on all linear maps, batch 1, as the rows say; not stated, assumed
# as the usual recipe runs it: gradient checkpointing, peft's prepare_model_for_kbit_training, torch AdamW,
# autocast bf16, and transformers 4.46-4.47's loss (`--loss fp32-shifted`; Jul 2024: 4.43, the same tensors).
UNSLOTH_HF = sorted(i for i, r in ROWS.items() if i.startswith("unsloth") and r.get("loss") == "hf")
# id -> (the tool's stated error, why): misses, each pinned to within one percentage point
MISSES = {
    **{
        f"unsloth-2024-12-llama3.1-8b-qlora-hf-fa2-{gb}gb": (error, "8B slope")
        for gb, error in ((12, 10.2), (16, 15.6), (24, 17.4), (40, 18.1), (48, 18.2), (80, 18.5))
    },
    **{
        f"unsloth-2024-07-llama3.1-8b-qlora-hf-fa2-{gb}gb": (error, "8B slope")
        for gb, error in ((16, 10.7), (24, 15.1), (40, 17.0), (48, 17.4), (80, 18.0))
    },
    "unsloth-2024-07-llama3.1-70b-qlora-hf-fa2-80gb": (-6.3, "70B Jul 2024"),
}
WHY = {
    "8B slope": (
        "the published 8B column rises 404.75 tokens per GB, 2.47 MB of budget per added token; the tool's loss "
        "phase needs 2.08 MB per token (12V for the loss's three fp32 tensors, measured to the byte under "
        "FakeTensorMode for transformers 5.24 and 4.46's shifted path alike, plus 4 · 32 · d of fp32 checkpointed "
        "inputs); the 0.39 MB per token the source spends beyond that is not explained by any tensor of the step "
        "(the source states neither versions, checkpointing nor how the budget was imposed, its rows are a "
        "straight-line fit, and the CUDA caching allocator's fragmentation, which the tool does not count, grows "
        "with these multi-GB blocks)"
    ),
    "70B Jul 2024": "the Dec 2024 measurement of the same setting (6,916 tokens) is within 1% of the tool; the Jul "
    "2024 figure (7,433) is 7% above it, and the two differ by more than the tool's error",
}
NOT_MODELLED = {
    "unsloth-2024-12-llama3.1-8b-qlora-unsloth": "Unsloth's own kernels: activations offloaded to the CPU and Cut "
    "Cross-Entropy (or its Triton loss); the tool models stock transformers and peft",
    "unsloth-2024-12-llama3.3-70b-qlora-unsloth": "Unsloth's own kernels (offloaded activations, Cut Cross-Entropy)",
    "torchtune": "torchtune's recipes: bf16 weights, gradients and optimizer states with bf16 LoRA adapters (no fp32 "
    "adapters, no autocast), its 8-chunk output loss (all chunks' bf16 logits alive), packing, torch.compile, "
    "optimizer-in-backward, FSDP; none of which the tool's HF + peft model describes",
    "liger-2024-11-flce-liger": "Liger's fused linear cross-entropy kernel: the tool's chunked path is an upper "
    "bound for it (a chunk's fp32 logits and gradients), not Liger's in-place bf16 chunk",
    "liger-2024-11-flce-hf": "a loss-only microbenchmark, reproduced as its per-token slope below (the absolute value "
    "adds the benchmark's two modules' weights, the weight's gradient and 16.5 MiB it does not describe)",
    "galore": "GaLore's projected 8-bit optimizer stepped per layer in backward hooks; not an optimizer the tool has",
    "cce-gemma2-2b": "a loss-only microbenchmark of Gemma 2's soft-capped head (tanh soft-cap copies the tool's loss "
    "paths do not have)",
}


def placed(row_id: str) -> bool:
    return row_id in UNSLOTH_HF or any(row_id.startswith(prefix) for prefix in NOT_MODELLED)


def test_every_row_is_accounted_for() -> None:
    assert len(ROWS) >= 30
    assert [i for i in ROWS if not placed(i)] == []
    assert set(MISSES) <= set(UNSLOTH_HF)


def budget_bytes(row: dict[str, Any]) -> int:
    """The VRAM budget a row names: '16 GB VRAM budget ...', or the 70B rows' '48 GB' / 'A100 80GB'."""
    if row["id"].endswith("gb"):
        return int(row["id"].rsplit("-", 1)[1].removesuffix("gb")) * GB
    raise AssertionError(f"no budget in {row['id']}")


def unsloth_longest(row: dict[str, Any]) -> int:
    spec = load_spec(row["model"])
    assert row["rank"] == 32 and row["micro_batch"] == 1
    assert row["targets"] == "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    targets = resolve_targets(spec, "all-linear")
    setup = TrainSetup(Method.lora, adapter_tensor_sizes(targets, 32), 1, lora_ranks(targets, 32), quantised_base=True,
                       checkpointing=Checkpointing.layers, loss=Loss.fp32_shifted)  # fmt: skip
    return longest_tokens(spec, setup, budget_bytes(row), 10**7)


@pytest.mark.parametrize("row_id", UNSLOTH_HF)
def test_unsloth_hf_longest_sequence(row_id: str) -> None:
    row = ROWS[row_id]
    assert row["quantity"] == "longest_tokens"
    got, published = unsloth_longest(row), row["value"]
    if published == 0:  # out of memory at any length
        assert got == 0, f"{row_id}: the tool fits {got:,} tokens where the run ran out of memory"
        return
    error = 100 * (got - published) / published
    if row_id in MISSES:
        stated, why = MISSES[row_id]
        assert abs(error - stated) < 1, f"{row_id}: {error:+.1f}%, stated {stated:+.1f}% ({WHY[why]})"
    else:
        assert abs(error) <= 5, f"{row_id}: tool {got:,} tokens, published {published:,} ({error:+.1f}%)"


def test_liger_torch_path_per_token() -> None:
    """Liger's benchmark of the plain torch head + CrossEntropyLoss on bf16 logits (no upcast): between 8,192 and
    32,768 positions the peak grows by the bf16 loss path's three tensors (6V) plus the bf16 input and its gradient
    (2 · 2d) per position."""
    small, large = ROWS["liger-2024-11-flce-hf-bt8192"], ROWS["liger-2024-11-flce-hf-bt32768"]
    spec = load_spec(small["model"])
    v, d = spec.vocab_size, spec.hidden_size
    per_position = loss_backward_bytes(v, 32768, 1, d, Loss.bf16) - loss_backward_bytes(v, 8192, 1, d, Loss.bf16)
    per_position = per_position // (32768 - 8192) + 2 * 2 * d
    published = (large["value"] - small["value"]) * 2**20 / (32768 - 8192)
    assert abs(per_position - published) / published < 0.05
    assert abs(per_position - published) < 16  # bytes per position: 785,920 against 785,932

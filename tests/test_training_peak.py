"""The peak of a fine-tuning step (#21): by hand from Llama 3.1 8B's config.json, and measured: the full-size step
under FakeTensorMode (estimator.validate.peak), QLoRA on a real NF4 twin, for every family the estimate covers."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from estimator.cli import main
from estimator.errors import EstimatorError
from estimator.memory.activations import Checkpointing, lora_ranks
from estimator.memory.formats import WeightFormat
from estimator.memory.loss import Loss, loss_backward_bytes
from estimator.memory.peak import largest_micro_batch, longest_tokens, train_peak
from estimator.memory.training import (
    Offload,
    Optimizer,
    TrainSetup,
    adapter_tensor_sizes,
    kbit_extra_weight_bytes,
    read_way,
    train_memory,
)
from estimator.memory.weights import weight_bytes_per_gpu
from estimator.stores.targets import resolve_targets
from estimator.zoo import load_spec

GiB = 2**30
# Llama 3.1 8B's config.json (tests/data/hf_configs/llama3.1-8b.json)
L, D, F, H, K, DH, V = 32, 4096, 14336, 32, 8, 128, 128256
R = 32
LORA_PARAMS = L * R * ((D + D) + 2 * (D + K * DH) + (D + D) + 3 * (D + F))  # q, k, v, o, gate, up, down
TENSORS = L * 7 * 2  # an A and a B per adapted map
ADAMW = 2 * 4 * LORA_PARAMS + 4 * TENSORS  # m and v in fp32, and a 4-byte step per tensor


@pytest.fixture(scope="module")
def llama() -> object:
    return load_spec("llama3.1-8b")


def setup_of(spec: object, way: str, tokens: int, **kwargs: object) -> TrainSetup:
    targets = resolve_targets(spec, "all-linear")  # type: ignore[arg-type]
    sizes = adapter_tensor_sizes(targets, R)
    kwargs.setdefault("checkpointing", Checkpointing.layers)
    method, quantised = read_way(way)
    return TrainSetup(method, sizes, tokens, lora_ranks(targets, R), quantised_base=quantised, **kwargs)  # type: ignore[arg-type]


def test_loss_paths_by_hand() -> None:
    n = 4096
    assert loss_backward_bytes(V, n, 1, D, Loss.fp32) == 3 * 4 * n * V == 6_304_038_912
    assert loss_backward_bytes(V, n, 1, D, Loss.fp32_shifted) == 3 * 4 * (n - 1) * V
    assert loss_backward_bytes(V, n, 1, D, Loss.bf16) == 3 * 2 * n * V
    assert loss_backward_bytes(V, n, 1, D, Loss.chunked, 1024) == 3 * 4 * 1024 * V + 2 * 2 * n * D
    assert loss_backward_bytes(V, 512, 1, D, Loss.chunked, 1024) == 3 * 4 * 512 * V + 2 * 512 * D  # one chunk
    with pytest.raises(EstimatorError, match="--loss-chunk 0 must be at least 1"):
        loss_backward_bytes(V, n, 1, D, Loss.chunked, 0)


def test_lora_peak_of_llama31_8b_by_hand(llama: object) -> None:
    """LoRA r=32 on a bf16 base, 4,096 tokens, checkpointing, fp32 loss: the loss phase decides."""
    t = 4096
    persistent = 2 * 8_030_261_248 + 4 * LORA_PARAMS + ADAMW
    saved = L * 2 * t * D + t * (4 * D + 4) + 8 * (t + 1) + 4 + 2 * 2 * t * DH  # inputs, final norm, labels, RoPE
    peak = train_peak(llama, setup_of(llama, "lora", t))  # type: ignore[arg-type]
    assert peak.persistent_bytes == persistent == 17_067_157_248
    assert peak.parts["loss"] == {"saved for backward": saved, "loss (fp32)": 12 * t * V}
    assert peak.phase == "loss" and peak.peak_bytes == 24_514_193_164


def test_shifted_loss_forward_decides_at_batch_two(llama: object) -> None:
    """transformers 4.43-4.47 at B = 2: the shifted slice is a copy, so the loss's forward (bf16 logits, their fp32
    copy, the shifted copy, the log-softmax) outgrows the backward's three tensors."""
    t, b = 1024, 2
    n = b * t
    saved = L * 2 * n * D + n * (4 * D + 4) + 8 * n + 4 + 2 * 2 * t * DH
    forward = saved + 2 * LORA_PARAMS + 2 * n * D + 2 * n * V + 4 * n * V + 2 * 4 * (n - b) * V
    peak = train_peak(llama, setup_of(llama, "lora", t, micro_batch=b, loss=Loss.fp32_shifted))  # type: ignore[arg-type]
    assert peak.phase == "forward" and peak.phases["forward"] == forward
    assert peak.phases["loss"] == saved + 12 * (n - b) * V < forward
    one = train_peak(llama, setup_of(llama, "lora", t, loss=Loss.fp32_shifted))  # type: ignore[arg-type]
    assert one.phase == "loss"  # at B = 1 the slice is contiguous: no copy


def test_qlora_kbit_prepare_by_hand(llama: object) -> None:
    unquantised = 2 * V * D + (2 * L + 1) * D  # embeddings, head, 65 norms
    assert kbit_extra_weight_bytes(llama, True) == 2 * unquantised == 2_101_878_784  # type: ignore[arg-type]
    nf4 = weight_bytes_per_gpu(llama, WeightFormat.nf4, fused_experts=True)  # type: ignore[arg-type]
    t = 2048
    prepared = train_peak(llama, setup_of(llama, "qlora", t))  # type: ignore[arg-type]
    plain = train_peak(llama, setup_of(llama, "qlora", t, kbit_prepare=False))  # type: ignore[arg-type]
    assert prepared.persistent_bytes - plain.persistent_bytes == 2 * unquantised
    assert plain.persistent_bytes == nf4 + 4 * LORA_PARAMS + ADAMW
    # fp32 embeddings and residual: every checkpointed input 4d, RoPE's cos and sin fp32, autocast's bf16 head copy
    extra = L * 2 * t * D + 2 * 2 * t * DH + 2 * V * D
    assert prepared.parts["loss"]["saved for backward"] - plain.parts["loss"]["saved for backward"] == extra


def longest_by_hand(budget: int, persistent: int, fixed: int, per_token: int) -> int:
    return (budget - persistent - fixed) // per_token


@pytest.mark.parametrize("gib", [16, 24, 48, 80])
def test_longest_qlora_sequence_by_hand(llama: object, gib: int) -> None:
    """The issue's question: Llama 3.1 8B QLoRA r=32, batch 1, checkpointing, kbit-prepare, fp32 loss; the loss
    phase per token: 4 · L · d (fp32 inputs) + 4d + 4 (final norm) + 8 (labels) + 8 · d_h (fp32 RoPE) + 12V."""
    nf4 = weight_bytes_per_gpu(llama, WeightFormat.nf4, fused_experts=True)  # type: ignore[arg-type]
    persistent = nf4 + 2 * (2 * V * D + (2 * L + 1) * D) + 4 * LORA_PARAMS + ADAMW
    per_token = 4 * L * D + 4 * D + 4 + 8 + 8 * DH + 12 * V
    assert per_token == 2_080_780
    fixed = 8 + 4 + 2 * V * D  # labels' extra slot, the loss scalar, autocast's bf16 copy of the fp32 head
    expected = longest_by_hand(gib * GiB, persistent, fixed, per_token)
    setup = setup_of(llama, "qlora", 1)
    got = longest_tokens(llama, setup, gib * GiB, 10**7)  # type: ignore[arg-type]
    assert got == expected
    assert train_peak(llama, replace(setup, tokens=got)).phase == "loss"  # type: ignore[arg-type]


@pytest.mark.parametrize("gib", [16, 24, 48, 80])
def test_longest_chunked_sequence_by_hand(llama: object, gib: int) -> None:
    """With a chunked loss (1,024 positions) the layers' backward decides: per token the saved inputs, the
    recomputed layer (217,672 + RoPE 512) and the gradients in flight (2 · 4d + 3 · 2F); fixed: autocast's head
    copy, the recomputed adapters' bf16 A and B, the NF4 dequantisation buffer and the LoRA gradients."""
    nf4 = weight_bytes_per_gpu(llama, WeightFormat.nf4, fused_experts=True)  # type: ignore[arg-type]
    persistent = nf4 + 2 * (2 * V * D + (2 * L + 1) * D) + 4 * LORA_PARAMS + ADAMW
    layer = 2 * (4 * D + 4) + 2 * (H * DH + 2 * K * DH + H * DH) + 4 * H + 2 * (6 * (D + R) + F + R) + 6 * F
    assert layer == 217_672
    per_token = 4 * L * D + 4 * D + 4 + 8 + 8 * DH + (layer + 4 * DH) + 2 * 4 * D + 3 * 2 * F
    fixed = 8 + 4 + 2 * V * D + 2 * R * (2 * (D + D) + 2 * (D + K * DH) + 3 * (D + F)) + 2 * D * F + 4 * LORA_PARAMS
    expected = longest_by_hand(gib * GiB, persistent, fixed, per_token)
    setup = setup_of(llama, "qlora", 1, loss=Loss.chunked)
    got = longest_tokens(llama, setup, gib * GiB, 10**7)  # type: ignore[arg-type]
    assert got == expected
    assert train_peak(llama, replace(setup, tokens=got)).phase == "layers"  # type: ignore[arg-type]


def test_largest_micro_batch_and_bisection_edges(llama: object) -> None:
    setup = setup_of(llama, "qlora", 4096)
    budget = 80 * GiB
    most = largest_micro_batch(llama, setup, budget)  # type: ignore[arg-type]
    assert train_peak(llama, replace(setup, micro_batch=most)).peak_bytes <= budget  # type: ignore[arg-type]
    assert train_peak(llama, replace(setup, micro_batch=most + 1)).peak_bytes > budget  # type: ignore[arg-type]
    assert longest_tokens(llama, setup, 1 * GiB, 10**6) == 0  # type: ignore[arg-type]
    assert largest_micro_batch(llama, setup, 1 * GiB) == 0  # type: ignore[arg-type]


def test_dropout_paged_and_offload(llama: object) -> None:
    t = 1024
    base = train_peak(llama, setup_of(llama, "lora", t))  # type: ignore[arg-type]
    dropped = train_peak(llama, setup_of(llama, "lora", t, lora_dropout=0.05))  # type: ignore[arg-type]
    mask = t * (6 * D + F)  # one bool per input element of each adapted map, in the recomputed layer only
    assert dropped.phases["layers"] - base.phases["layers"] == mask and dropped.phases["loss"] == base.phases["loss"]
    no_checkpoints = setup_of(llama, "lora", t, lora_dropout=0.05, checkpointing=Checkpointing.none)
    plain = train_peak(llama, replace(no_checkpoints, lora_dropout=0.0))  # type: ignore[arg-type]
    masks = t * (L * (6 * D + F) - 3 * D)  # every layer's, but not the first layer's q, k, v (no input gradient)
    assert train_peak(llama, no_checkpoints).phases["loss"] - plain.phases["loss"] == masks  # type: ignore[arg-type]
    paged = train_memory(llama, setup_of(llama, "lora", t, optimizer=Optimizer.paged_adamw))  # type: ignore[arg-type]
    assert paged.optimizer_bytes == 0 and paged.off_gpu_bytes == ADAMW
    offloaded = train_memory(llama, setup_of(llama, "lora", t, offload=Offload.optimizer))  # type: ignore[arg-type]
    assert offloaded.optimizer_bytes == 0 and offloaded.off_gpu_bytes == ADAMW
    with pytest.raises(EstimatorError, match="--lora-dropout 1"):
        setup_of(llama, "lora", t, lora_dropout=1.0)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_memory_json_answers_the_inverse(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "train-memory", "--model", "llama3.1-8b", "--way", "qlora", "--checkpointing",
                       "layers", "--memory", "16GiB", "--json")  # fmt: skip
    assert code == 0
    (way,) = json.loads(out)["ways"]
    llama = load_spec("llama3.1-8b")
    setup = setup_of(llama, "qlora", 4096)
    assert way["peak_phase"] == "loss" and way["fits"] is False and way["peak_bytes"] > 16 * GiB
    assert way["longest_tokens"] == longest_tokens(llama, setup, 16 * GiB, 10**7) > 0
    assert way["largest_micro_batch"] == largest_micro_batch(llama, setup, 16 * GiB) == 0
    assert sum(way["phase_parts_bytes"]["loss"].values()) + way["persistent_bytes"] == way["peak_bytes"]
    code, out, _ = run(capsys, "train-memory", "--model", "llama3.1-8b", "--way", "qlora", "--checkpointing",
                       "layers", "--memory", "16GiB", "--loss", "chunked", "--no-kbit-prepare", "--optimizer",
                       "paged-adamw-8bit", "--lora-dropout", "0.05")  # fmt: skip
    assert code == 0 and "off the GPU (paged/CPU)" in out and "longest sequence (tokens)" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--loss", "fp16"], "unknown --loss 'fp16'"),
        (["--loss", "chunked", "--loss-chunk", "0"], "--loss-chunk 0 must be at least 1"),
        (["--lora-dropout", "1.5"], "--lora-dropout 1.5 must be in [0, 1)"),
        (["--offload", "disk"], "unknown --offload 'disk'"),
    ],
)
def test_bad_training_options_are_one_line(capsys: pytest.CaptureFixture[str], args: list[str], needle: str) -> None:
    code, out, err = run(capsys, "train-memory", *args)
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err, err


def test_train_memory_imports_no_torch() -> None:
    code = (
        "import sys\nfrom estimator.cli import main\n"
        "rc = main(['train-memory', '--way', 'qlora', '--loss', 'chunked', '--checkpointing', 'layers', '--json'])\n"
        "print('HEAVY', sorted(m for m in ('numpy', 'pandas', 'matplotlib', 'torch') if m in sys.modules), rc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY [] 0" in result.stdout


def test_full_size_step_measured_under_fake_tensors(llama: object) -> None:
    """Llama 3.1 8B itself (all 32 layers, the real vocabulary), LoRA r=32, 2,048 tokens, checkpointing, fp32 loss:
    the tracker's peak at the start of backward is the hand number above less 4 bytes (the labels' and scalars'
    stated difference), RoPE's 512 bytes of buffers apart."""
    pytest.importorskip("torch")
    from estimator.validate.peak import measure_peak

    t = 2048
    measured = measure_peak(llama, t, rank=R, checkpointing=True, loss="fp32")  # type: ignore[arg-type]
    persistent = 2 * 8_030_261_248 + 4 * LORA_PARAMS + ADAMW
    saved = L * 2 * t * D + t * (4 * D + 4) + 8 * (t + 1) + 4 + 2 * 2 * t * DH
    assert measured.buffers_bytes == 512
    assert measured.phase_peak_bytes["backward"] - 512 == persistent + saved + 12 * t * V - 4
    assert measured.peak_phase == "backward"


@pytest.mark.parametrize("model", ["llama3.1-8b", "mistral-7b-v0.3", "qwen2.5-7b", "qwen3-8b", "qwen3-30b-a3b"])
def test_peak_measured_for_every_family(model: str) -> None:
    """Full widths and vocabulary, one layer of each kind, under FakeTensorMode: the loss phase agrees to within the
    stated bytes, LoRA dropout's masks to the byte (4 × on the CPU), every forward, layers' and optimizer estimate
    within 3% (MoE LoRA activations are an estimate: stated)."""
    pytest.importorskip("torch")
    from estimator.validate.peak import peak_checks

    checks, notes = peak_checks(load_spec(model))
    assert checks and all(c.status in ("ok", "explained") for c in checks), checks
    assert model != "qwen3-30b-a3b" or any("refuses it" in note for note in notes)  # peft: no dropout on experts
    for note in (n for n in notes if n.endswith("not compared to the byte.")):
        share = float(note.split("(")[-1].split("%")[0])
        assert model == "qwen3-30b-a3b" or abs(share) < 3, note


def test_qlora_twin_measured_with_bitsandbytes() -> None:
    pytest.importorskip("bitsandbytes")
    from estimator.validate.hf import twin_spec
    from estimator.validate.qlora_peak import qlora_twin_checks

    twin, _ = twin_spec(load_spec("llama3.1-8b"), 256)
    checks = qlora_twin_checks(twin)
    assert len(checks) == 4 and all(c.status in ("ok", "explained") for c in checks), checks

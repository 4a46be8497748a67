"""Memory per GPU to fine-tune: frozen and trainable weights, gradients, optimizer states, master weights,
and the activations saved for backward, under data parallelism with ZeRO/FSDP sharding.

Bytes per trainable parameter, by precision (the ZeRO paper's accounting, Rajbhandari et al. 2020):
- ``mixed``: bf16 weights (2) and gradients (2), an fp32 master copy (4) and fp32 optimizer states
  (AdamW: 8), 16 bytes in all (DeepSpeed, Megatron with bf16);
- ``bf16``: bf16 weights, gradients and states, no master copy (AdamW: 2 + 2 + 4 = 8);
- ``fp32``: everything fp32 (AdamW: 4 + 4 + 8 = 16).
An adapter (LoRA, DoRA) keeps its own weights in fp32 whatever the base's dtype (peft's
``autocast_adapter_dtype``), so they train as ``fp32``: 4 + 4 + 8 = 16 bytes per adapter parameter with
AdamW. QLoRA is LoRA on NF4 base weights (:mod:`estimator.memory.formats`).

ZeRO over N GPUs: stage 1 shards the optimizer states and master weights, stage 2 also the gradients,
stage 3 (FSDP's full shard) also the weights, frozen ones included: each sharded part is ⌈bytes / N⌉.

What stays on the GPU: bitsandbytes' paged optimizers (``paged-adamw``, ``paged-adamw-8bit``) allocate their
states with ``cudaMallocManaged`` (unified memory, evicted to the CPU when the GPU runs short), outside torch's
allocator: they count 0 against the device here, and their bytes are reported apart. ``--offload optimizer``
(DeepSpeed ZeRO-Offload) keeps optimizer states and master weights on the CPU; ``--offload params`` (FSDP's
CPUOffload) also the parameters and gradients, the GPU holding two layers' weights (in use and prefetched) and
one layer's gradients at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, assert_never

from estimator.architecture import layout_of
from estimator.errors import EstimatorError
from estimator.memory.activations import Checkpointing, activation_bytes
from estimator.memory.formats import FP32_BYTES, WeightFormat
from estimator.memory.loss import LOSS_CHUNK_TOKENS, Loss
from estimator.memory.weights import linear_format, weight_bytes_per_gpu
from estimator.query.vocabulary import Method

if TYPE_CHECKING:
    from estimator.specs import ModelSpec
    from estimator.stores.targets import Targets

BNB_BLOCK = 256  # bitsandbytes' 8-bit optimizers quantise their states in blocks of 256
BNB_MIN_8BIT = 4096  # ... but keep fp32 states for tensors of fewer elements (min_8bit_size)
BNB_QMAP_ENTRIES = 256  # and keep, per tensor, each state's fp32 quantisation map (qmap1, qmap2)


TrainMethod = Literal[Method.lora, Method.dora, Method.full]  # what trains: an adapter on the frozen base, or all
WAYS: dict[str, tuple[TrainMethod, bool]] = {  # ``--way``'s words: (method, base quantised to NF4)
    "lora": (Method.lora, False),
    "dora": (Method.dora, False),
    "qlora": (Method.lora, True),  # QLoRA: LoRA on NF4 base weights
    "full": (Method.full, False),
}


def read_way(word: str) -> tuple[TrainMethod, bool]:
    """One of ``--way``'s words as (method, quantised base): ``qlora`` is LoRA on an NF4 base; one line otherwise."""
    pair = WAYS.get(word.strip().lower())
    if pair is None:
        raise EstimatorError(f"unknown --way {word!r}; use one of: {', '.join(WAYS)}")
    return pair


class Precision(StrEnum):
    mixed = "mixed"
    bf16 = "bf16"
    fp32 = "fp32"


class Optimizer(StrEnum):
    adamw = "adamw"
    adamw_8bit = "adamw-8bit"
    paged_adamw = "paged-adamw"
    paged_adamw_8bit = "paged-adamw-8bit"
    sgd = "sgd"
    sgd_momentum = "sgd-momentum"

    @property
    def slots(self) -> int:
        """State tensors per parameter: AdamW's m and v, SGD's momentum buffer, plain SGD's none."""
        return {"sgd": 0, "sgd-momentum": 1}.get(self.value, 2)

    @property
    def paged(self) -> bool:
        """bitsandbytes' paged variants: states in CUDA unified memory, outside torch's allocator."""
        return self.value.startswith("paged")

    @property
    def eight_bit(self) -> bool:
        return self.value.endswith("8bit")


class Offload(StrEnum):
    """What DeepSpeed ZeRO-Offload / FSDP CPUOffload moves to the CPU (the module docstring)."""

    none = "none"
    optimizer = "optimizer"
    params = "params"


def optimizer_state_bytes(tensor_sizes: tuple[int, ...], optimizer: Optimizer, state_bytes: int) -> int:
    """Bytes of the optimizer's state for trainable tensors of the given sizes.

    torch's AdamW and SGD: slots · n · b per tensor, b the parameter's (or master copy's) width, and AdamW's
    fp32 step counter (4 per tensor): a LoRA A of 32 × 8,192 in fp32 under AdamW holds
    2 · 262,144 · 4 + 4 = 2,097,156 bytes. bitsandbytes' AdamW8bit (as
    measured on bitsandbytes 0.50): per tensor of n ≥ 4,096 elements, two uint8 states (n each), two fp32
    absmax per block of 256 and its two fp32 quantisation maps of 256 entries, 2n + 8 ⌈n / 256⌉ + 2,048
    (n = 1,000,000: 2,033,304); smaller tensors keep fp32 states, 8n."""
    if optimizer in (Optimizer.adamw, Optimizer.paged_adamw):  # and torch's fp32 ``step``, a 0-d tensor each
        return optimizer.slots * state_bytes * sum(tensor_sizes) + FP32_BYTES * len(tensor_sizes)
    if not optimizer.eight_bit:
        return optimizer.slots * state_bytes * sum(tensor_sizes)
    total = 0
    for n in tensor_sizes:
        if n >= BNB_MIN_8BIT:
            total += 2 * n + 2 * FP32_BYTES * -(-n // BNB_BLOCK) + 2 * BNB_QMAP_ENTRIES * FP32_BYTES
        else:
            total += 2 * FP32_BYTES * n
    return total


@dataclass(frozen=True)
class TrainSetup:
    """One fine-tuning run: the method (LoRA, DoRA or full) and its base (NF4 for QLoRA), its adapter's trainable
    tensors, precision, optimizer, sequence of T tokens in micro-batches of B, checkpointing, N data-parallel GPUs
    at a ZeRO stage."""

    method: TrainMethod
    trainable_sizes: tuple[int, ...]  # elements of each trainable tensor (an adapter's A and B, or every weight)
    tokens: int
    ranks: dict[str, int] | None = None  # adapted maps and their ranks (None: full fine-tuning)
    quantised_base: bool = False  # the frozen base in NF4 with double quantisation (bitsandbytes): QLoRA
    micro_batch: int = 1
    precision: Precision = Precision.mixed
    optimizer: Optimizer = Optimizer.adamw
    checkpointing: Checkpointing = Checkpointing.none
    autocast: bool = True  # torch.autocast(bf16), as HF Trainer's bf16=True runs the forward pass
    gpus: int = 1
    zero: int = 0
    fused_experts: bool = True  # experts as transformers >= 5 builds them (bitsandbytes leaves them bf16)
    loss: Loss = Loss.fp32
    loss_chunk: int = LOSS_CHUNK_TOKENS  # positions per chunk of the chunked loss
    kbit_prepare: bool = True  # QLoRA: peft's prepare_model_for_kbit_training (16-bit parameters to fp32)
    lora_dropout: float = 0.0
    offload: Offload = Offload.none
    outside_params: int = 0  # --part all: a multimodal checkpoint's tower and projector, frozen under adapters

    def __post_init__(self) -> None:
        if (self.method, self.quantised_base) not in WAYS.values():
            base = "an NF4" if self.quantised_base else "a bf16"
            raise EstimatorError(f"{self.method} on {base} base is not modelled; --way takes {', '.join(WAYS)}")
        if self.zero not in (0, 1, 2, 3):
            raise EstimatorError(f"ZeRO stage {self.zero} does not exist; use 0, 1, 2 or 3")
        if not 0 <= self.lora_dropout < 1:
            raise EstimatorError(f"--lora-dropout {self.lora_dropout} must be in [0, 1); peft's default is 0")
        if self.tokens < 1 or self.micro_batch < 1:
            raise EstimatorError("--tokens and --micro-batch must be at least 1; give e.g. --tokens 4k")

    @property
    def way(self) -> str:
        """``--way``'s word for this run: ``qlora`` for LoRA on an NF4 base, else the method's name."""
        return next(word for word, pair in WAYS.items() if pair == (self.method, self.quantised_base))

    @property
    def adapted(self) -> bool:
        """An adapter trains on the frozen base (LoRA, DoRA, QLoRA), not every weight (full fine-tuning)."""
        method = self.method
        match method:
            case Method.lora | Method.dora:
                return True
            case Method.full:
                return False
            case _:
                assert_never(method)


@dataclass(frozen=True)
class TrainMemory:
    """Bytes per GPU by component."""

    frozen_weights_bytes: int
    trainable_weights_bytes: int
    master_weights_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    activation_bytes: int  # saved for backward, and one layer's recompute under checkpointing
    logits_bytes: int  # the bf16 logits the forward pass returns
    activations_exact: bool  # every layer kind measured to the byte (else an estimate from the same terms)
    off_gpu_bytes: int = 0  # paged (unified memory) or CPU-offloaded states and weights, not on the GPU

    @property
    def total_bytes(self) -> int:
        return (
            self.frozen_weights_bytes
            + self.trainable_weights_bytes
            + self.master_weights_bytes
            + self.gradient_bytes
            + self.optimizer_bytes
            + self.activation_bytes
            + self.logits_bytes
        )


def adapter_tensor_sizes(targets: Targets, rank: int, magnitudes: bool = False) -> tuple[int, ...]:
    """Elements of each trainable tensor of a LoRA (A: r · d_in, B: d_out · r per adapted map and copy; a
    fused expert tensor gets one A and one B for all E experts, as peft's ``target_parameters``), plus
    DoRA's magnitude vector (d_out) per map and copy. They sum to :func:`~estimator.stores.targets.lora_params`."""
    sizes: list[int] = []
    for i, linear in enumerate(targets.linears):
        r = rank * targets.factor(i)
        per, instances = (1, linear.copies) if linear.module else (linear.count, linear.layers)
        tensors = [per * r * linear.d_in, per * r * linear.d_out] + ([linear.d_out * per] if magnitudes else [])
        sizes.extend(tensors * instances)
    return tuple(sizes)


def full_tensor_sizes(spec: ModelSpec, fused_experts: bool = False) -> tuple[int, ...]:
    """Elements of every parameter tensor (each map's weight and bias, per copy; every other tensor; experts
    as one 3-D tensor per map and layer when fused); they sum to the model's parameters (Llama 3 70B:
    70,553,706,496 in 723 tensors)."""
    sizes: list[int] = []
    for g in layout_of(spec).groups:
        for linear in g.linears(fused_experts):
            if linear.weight_params:
                per, instances = (1, linear.count) if linear.module else (linear.count, 1)
                one = [per * linear.d_in * linear.d_out] + ([per * linear.d_out] if linear.bias else [])
                sizes.extend(one * (instances * g.layers))
    for tensor in layout_of(spec).other_tensors():
        sizes.extend([tensor.numel] * tensor.copies)
    return tuple(sizes)


def kbit_extra_weight_bytes(spec: ModelSpec, fused_experts: bool) -> int:
    """Bytes peft's ``prepare_model_for_kbit_training`` adds by casting every bf16 parameter that is not a
    ``Params4bit`` to fp32: 2 per element of what bitsandbytes leaves unquantised (embeddings, head, norms,
    biases, bare expert tensors, routers). Llama 3.1 8B: 2 · (8,030,261,248 − 6,979,321,856) = 2,101,878,784."""
    quantised = sum(
        g.layers * m.weight_params
        for g in layout_of(spec).groups
        for m in g.linears(fused_experts)
        if m.weight_params and linear_format(m, WeightFormat.nf4) is WeightFormat.nf4
    )
    return (FP32_BYTES - 2) * (sum(full_tensor_sizes(spec, fused_experts)) - quantised)


def outside_frozen_bytes(setup: TrainSetup) -> int:
    """Bytes of a multimodal checkpoint's parts outside the language model (``--part all``: P parameters of the
    vision tower and projector) frozen under an adapter: bf16, 2 P, as bitsandbytes leaves them unquantised
    for QLoRA, where peft's ``prepare_model_for_kbit_training`` casts them to fp32, 4 P. Full fine-tuning trains
    them (in ``trainable_sizes``): 0 here. Gemma 3 27B (P = 423,060,336) under LoRA: 846,120,672 bytes."""
    if not setup.adapted:
        return 0
    width = FP32_BYTES if setup.quantised_base and setup.kbit_prepare else 2
    return width * setup.outside_params


def layer_weight_bytes(spec: ModelSpec, fused_experts: bool) -> int:
    """bf16 bytes of the largest decoder layer's weights (FSDP gathers one layer at a time)."""
    return max(sum(2 * m.params for m in g.linears(fused_experts)) + 2 * sum(t.params for t in g.tensors)
               for g in layout_of(spec).groups)  # fmt: skip


def widths(setup: TrainSetup) -> tuple[int, int, int]:
    """(weight, gradient, master) bytes per trainable parameter; adapters train in fp32."""
    if setup.adapted or setup.precision is Precision.fp32:
        return FP32_BYTES, FP32_BYTES, 0
    if setup.precision is Precision.mixed:
        return 2, 2, FP32_BYTES
    return 2, 2, 0


def shard(value: int, gpus: int, sharded: bool) -> int:
    return -(-value // gpus) if sharded else value


def train_memory(spec: ModelSpec, setup: TrainSetup) -> TrainMemory:
    """Every component per GPU (see the module docstring for the bytes per parameter and the sharding).

    Llama 3 70B, LoRA r = 32 all-linear (414,187,520 parameters in 1,120 tensors), AdamW, one GPU:
    frozen 141,107,412,992 + weights 1,656,750,080 + gradients 1,656,750,080 + states 3,313,504,640."""
    weight_w, grad_w, master_w = widths(setup)
    params = sum(setup.trainable_sizes)
    frozen = 0
    if setup.adapted:
        fmt = WeightFormat.nf4 if setup.quantised_base else WeightFormat.bf16
        frozen = weight_bytes_per_gpu(spec, fmt, fused_experts=setup.fused_experts)
        if setup.quantised_base and setup.kbit_prepare:
            frozen += kbit_extra_weight_bytes(spec, setup.fused_experts)
        frozen += outside_frozen_bytes(setup)
    state_w = FP32_BYTES if master_w or weight_w == FP32_BYTES else weight_w
    n, z = setup.gpus, setup.zero
    ranks = (setup.ranks or {}) if setup.adapted else None
    acts = activation_bytes(spec, setup.tokens, setup.micro_batch, ranks, setup.checkpointing, setup.autocast)
    weights = shard(frozen, n, z >= 3), shard(params * weight_w, n, z >= 3)
    master = shard(params * master_w, n, z >= 1)
    grads = shard(params * grad_w, n, z >= 2)
    states = shard(optimizer_state_bytes(setup.trainable_sizes, setup.optimizer, state_w), n, z >= 1)
    off = 0
    if setup.optimizer.paged or setup.offload is not Offload.none:
        off, states = off + states, 0
    if setup.offload is not Offload.none:
        off, master = off + master, 0
    if setup.offload is Offload.params:  # the GPU holds two layers' share of each weight, one layer's of gradients
        off += sum(weights) + grads
        share = min(1.0, layer_weight_bytes(spec, setup.fused_experts) / (2 * sum(full_tensor_sizes(spec))))
        weights = int(weights[0] * min(1.0, 2 * share)), int(weights[1] * min(1.0, 2 * share))
        grads = int(grads * share)
    return TrainMemory(
        frozen_weights_bytes=weights[0],
        trainable_weights_bytes=weights[1],
        master_weights_bytes=master,
        gradient_bytes=grads,
        optimizer_bytes=states,
        activation_bytes=acts.saved_bytes + acts.recompute_bytes,
        logits_bytes=acts.logits_bytes,
        activations_exact=acts.exact,
        off_gpu_bytes=off,
    )

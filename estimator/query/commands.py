"""The options of the commands that answer other questions than the main one (``serve-memory``,
``train-memory``, ``compare``), declared once as data, like the main query's (:mod:`estimator.query.options`):
the CLI turns them into typer options, the server parses a client's values with the same grammar
(:mod:`estimator.query.grammar`) and lists them under ``commands`` in ``GET /api/options``, which the page's
panels read. Neither face declares an option of these commands, or imports the other."""

from __future__ import annotations

from dataclasses import dataclass, field

from estimator.query.options import SERVING_OPTIONS, TRAINING_OPTIONS, Kind, Option


@dataclass(frozen=True, kw_only=True)
class Command:
    """A command's own options, the query options it offers (``offered``, None: every one), its defaults for
    those, and the own options a client may give as a comma list (``lists``, for the page)."""

    name: str
    options: tuple[Option, ...]
    offered: tuple[str, ...] | None
    defaults: dict[str, object] = field(default_factory=dict)
    lists: tuple[str, ...] = ()


ACCELERATOR = Option(
    name="accelerator",
    default="h100-sxm",
    flags=("--accelerator",),
    help="Device: h100-sxm, h200, b200, a100-80gb, l40s, rtx-4090, mi300x, ...",
)
MEMORY = Option(name="memory", default=None, optional=True, flags=("--memory",),
                help="A custom device size with its unit instead (80GiB; 24GB is 10^9 bytes each).")  # fmt: skip

SERVE_MEMORY = Command(
    name="serve-memory",
    offered=SERVING_OPTIONS,
    defaults={"methods": "kv", "tokens": "8192"},
    lists=("model", "tp", "batch"),
    options=(
        Option(name="batch", default="1", flags=("--batch", "-b"),
               help="Sequences of --tokens at once: 1, or a list 1,8."),
        Option(name="tp", default="1", flags=("--tp",), help="Tensor-parallel GPUs: 1, or a list 1,2,4,8."),
        Option(name="weights_dtype", default="auto", flags=("--weights-dtype",),
               help="Weight format, or auto: as the --config checkpoint stores it, else bf16."),
        Option(name="engine", default="vllm",
               help="Serving engine's memory rule: vllm (0.19), vllm-0.11, sglang (0.4.6), none."),
        ACCELERATOR,
        MEMORY,
        Option(name="memory_fraction", default=None, optional=True, kind=Kind.number,
               help="Share the engine budgets (vLLM's gpu_memory_utilization); default its own."),
        Option(name="block_size", default=None, optional=True, kind=Kind.integer,
               help="Tokens per cache block (vLLM: 16)."),
        Option(name="max_num_seqs", default=None, optional=True, kind=Kind.integer,
               help="The engine's max_num_seqs; default its own."),
        Option(name="max_num_batched_tokens", default=None, optional=True, kind=Kind.integer,
               flags=("--max-num-batched-tokens", "--chunk"), help="Prefill chunk; default the engine's."),
        Option(name="max_model_len", default=None, optional=True,
               help="The engine's max_model_len (concurrency is per request of it); default --tokens."),
        Option(name="overhead", default="0", help="More memory per GPU to keep free, with its unit (e.g. 1GiB)."),
        Option(name="max_loras", default=0, kind=Kind.integer,
               help="LoRA adapters served at once (vLLM's --max-loras); 0: none."),
        Option(name="max_lora_rank", default=16, kind=Kind.integer,
               help="Their largest rank (vLLM's --max-lora-rank)."),
        Option(name="draft_model", default=None, optional=True,
               help="A zoo model as the draft for speculative decoding (its weights and cache)."),
        Option(name="kv_offload", default=None, optional=True,
               help="CPU memory per GPU for offloaded KV blocks, with its unit (e.g. 64GiB)."),
    ),
)  # fmt: skip

TRAIN_MEMORY = Command(
    name="train-memory",
    offered=TRAINING_OPTIONS,
    defaults={"tokens": "4096", "methods": "lora", "experts": "fused"},
    lists=("model", "way"),
    options=(
        Option(name="way", default="lora,qlora,full", flags=("--way",),
               help="Comma list: lora, dora, qlora (LoRA on NF4 weights), full."),
        Option(name="micro_batch", default=1, kind=Kind.integer, help="Sequences of --tokens per step on each GPU."),
        Option(name="optimizer", default="adamw",
               help="adamw (torch's fused, HF Trainer's default), adamw-8bit, paged-adamw, paged-adamw-8bit "
                    "(bitsandbytes; paged states live in unified memory, not counted on the GPU), sgd, sgd-momentum."),
        Option(name="precision", default="mixed",
               help="Full fine-tuning: mixed (bf16 + fp32 master, 16 B/param with AdamW), bf16 or fp32."),
        Option(name="checkpointing", default="none",
               help="Gradient checkpointing: none, or layers (keep each layer's input, recompute)"),
        Option(name="loss", default="fp32",
               help="Loss path: fp32 (transformers 5's ForCausalLMLoss), fp32-shifted (transformers 4.43-4.47), bf16 "
                    "(no upcast, outside autocast), chunked (--loss-chunk positions at a time)."),
        Option(name="loss_chunk", default=1024, kind=Kind.integer, help="Positions per chunk of --loss chunked."),
        Option(name="kbit_prepare", default=True, kind=Kind.flag, flags=("--kbit-prepare/--no-kbit-prepare",),
               help="QLoRA: peft's prepare_model_for_kbit_training (embeddings, head, norms to fp32), as usually run."),
        Option(name="lora_dropout", default=0.0, kind=Kind.number,
               help="LoRA dropout (peft's lora_dropout); 0 by default."),
        Option(name="offload", default="none",
               help="CPU offload: none, optimizer (ZeRO-Offload), params (FSDP CPUOffload)."),
        Option(name="autocast", default=True, kind=Kind.flag, flags=("--autocast/--no-autocast",),
               help="Forward under torch.autocast(bf16), as HF Trainer's bf16=True (LoRA activations)."),
        Option(name="gpus", default=1, kind=Kind.integer, help="Data-parallel GPUs."),
        Option(name="zero", default=0, kind=Kind.integer,
               help="ZeRO stage: 0, 1 (optimizer), 2 (+ gradients), 3 / FSDP (+ weights)."),
        ACCELERATOR,
        MEMORY,
    ),
)  # fmt: skip

COMPARE = Command(
    name="compare",
    offered=None,
    lists=("model",),
    options=(
        Option(name="model", default=None, optional=True, flags=("--model", "-m"),
               help="Zoo models to compare, comma-separated: llama3-8b,qwen3-8b."),
        Option(name="tokens", default="32k,1M", flags=("--tokens", "-t"),
               help="Token counts, comma-separated: 32k,1M."),
    ),
)  # fmt: skip

COMMANDS = {command.name: command for command in (SERVE_MEMORY, TRAIN_MEMORY, COMPARE)}

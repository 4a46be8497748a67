"""Measure a LoRA training step on a GPU against `estimate train-memory`'s peak (needs CUDA; never run by the tests).

    python benchmarks/gpu_lora_step.py [--config tests/data/hf_configs/extra/llama3.2-1b.json] [--tokens 2048,8192]

Builds the model from its config.json with random weights in bf16 on the GPU (nothing is downloaded), adds
peft's LoRA (r=32, all-linear, dropout 0), and runs warm-up steps then a measured step (forward with labels,
backward, AdamW step) under torch.autocast(bf16), as HF Trainer's bf16=True does. Prints
torch.cuda.max_memory_allocated of the measured step beside the tool's peak for the same settings, with and
without gradient checkpointing. The allocator's reserved memory is printed too: the tool counts live tensors.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

GiB = 2**30
ROOT = Path(__file__).resolve().parent.parent


def estimate_peak_bytes(config: Path, tokens: int, rank: int, checkpointing: bool) -> int:
    """The tool's peak for the same step, from its own JSON."""
    mode = "layers" if checkpointing else "none"
    command = [sys.executable, "-m", "estimator.cli", "train-memory", "--config", str(config), "--tokens", str(tokens),
               "--rank", str(rank), "--way", "lora", "--checkpointing", mode, "--json"]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    (way,) = json.loads(out)["ways"]
    return int(way["peak_bytes"])


def measured_peak_bytes(config: Path, tokens: int, rank: int, checkpointing: bool) -> tuple[int, int]:
    """(max_memory_allocated, max_memory_reserved) of one measured LoRA step on cuda:0."""
    import peft
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    hf = AutoConfig.from_pretrained(config.parent if config.name == "config.json" else config)
    model = AutoModelForCausalLM.from_config(hf, torch_dtype=torch.bfloat16).cuda()
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = peft.LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", lora_dropout=0.0)
    model = peft.get_peft_model(model, lora)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, hf.vocab_size, (1, tokens), device="cuda")

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):  # the optimizer's states exist from the first step on
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "tests/data/hf_configs/extra/llama3.2-1b.json")
    parser.add_argument("--tokens", default="2048,8192")
    parser.add_argument("--rank", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: this script measures on a GPU only", file=sys.stderr)
        return 2
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; {args.config.name}, LoRA r={args.rank}")
    print(f"{'tokens':>7} {'checkpointing':>13} {'measured GiB':>13} {'reserved GiB':>13} {'tool GiB':>9} {'error':>7}")
    for tokens in (int(t) for t in args.tokens.split(",")):
        for checkpointing in (False, True):
            allocated, reserved = measured_peak_bytes(args.config, tokens, args.rank, checkpointing)
            torch.cuda.empty_cache()  # the step's model and optimizer are gone with its frame
            tool = estimate_peak_bytes(args.config, tokens, args.rank, checkpointing)
            error = (tool - allocated) / allocated
            print(f"{tokens:>7,} {checkpointing!s:>13} {allocated / GiB:>13.2f} {reserved / GiB:>13.2f} "
                  f"{tool / GiB:>9.2f} {error:>+7.1%}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

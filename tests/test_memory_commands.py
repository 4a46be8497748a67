"""`estimate serve-memory` and `estimate train-memory`: tables, JSON with units in its keys, one-line errors;
and `estimate validate --memory`, which measures fine-tuning memory on twins (needs the validate extra)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from estimator.cli import main

GiB = 2**30


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_memory_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "train-memory", "--model", "llama3-70b", "--tokens", "4096")
    assert code == 0
    header = out.splitlines()[2].split()
    assert header[-5:] == ["LoRA", "r=32", "QLoRA", "r=32", "full"]
    fits = next(line for line in out.splitlines() if line.startswith("fits in ")).split()[-3:]
    assert fits == ["no", "no", "no"]
    code, out, _ = run(capsys, "train-memory", "--model", "llama3-70b", "--tokens", "4096", "--way", "qlora",
                       "--checkpointing", "layers", "--json")  # fmt: skip
    (way,) = json.loads(out)["ways"]
    assert way["fits"] is True and way["activations_exact"] is True
    assert way["gradient_bytes"] == 4 * 414_187_520


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["serve-memory", "--tp", "3"], "cannot be split evenly over 3 GPUs"),
        (["serve-memory", "--memory", "0"], "--memory 0 holds nothing"),
        (["serve-memory", "--memory", "lots"], "cannot read --memory 'lots'"),
        (["serve-memory", "--memory-fraction", "1.5"], "must be in (0, 1]"),
        (["serve-memory", "--weights-dtype", "int3"], "unknown --weights-dtype 'int3'"),
        (["serve-memory", "--batch", "0"], "--batch"),
        (["serve-memory", "--accelerator", "h100"], "h100-sxm"),
        (["serve-memory", "--chunk", "0"], "--chunk at least 1"),
        (["serve-memory", "--memory", "80"], "--memory 80 has no unit"),
        (["train-memory", "--zero", "4"], "ZeRO stage 4 does not exist"),
        (["train-memory", "--optimizer", "adam9"], "unknown --optimizer 'adam9'"),
        (["train-memory", "--way", "prompt"], "unknown --way 'prompt'"),
        (["train-memory", "--model", "mamba-2.8b"], "activation memory of recurrent layers is not modelled"),
    ],
)
def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], args: list[str], needle: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert needle in err


def test_memory_commands_import_no_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from estimator.cli import main\n"
        "rc = main(['serve-memory', '--tp', '8', '--json'])\n"
        "rc += main(['train-memory', '--json'])\n"
        "print('HEAVY', sorted(m for m in ('numpy', 'pandas', 'matplotlib', 'torch') if m in sys.modules), rc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY [] 0" in result.stdout


@pytest.mark.parametrize("model", ["llama3-8b", "qwen3-8b", "qwen3-30b-a3b"])
def test_fine_tuning_memory_is_measured_exactly(model: str) -> None:
    """Activations (saved-for-backward, to the byte), gradients, AdamW and 8-bit AdamW states after a real step,
    and NF4/int8 weights as bitsandbytes holds them, on each model's twin; no row differs."""
    pytest.importorskip("bitsandbytes")
    from estimator.validate.training import memory_validation
    from estimator.zoo import load_spec

    result = memory_validation(load_spec(model))
    statuses = {c.quantity: c.status for c in result.checks}
    assert result.ok, [c for c in result.checks if c.status == "differs"]
    assert statuses["weights in nf4, as bitsandbytes holds them (bytes)"] == "ok"
    assert statuses["adamw-8bit states, LoRA r=8 (bytes)"] == "ok"
    assert statuses["saved for backward, full, batch 2 (bytes)"] == "ok"
    if model != "qwen3-30b-a3b":  # LoRA on fused experts is an estimate: peft merges them, not compared
        assert statuses["saved for backward, LoRA r=8, batch 2, autocast bf16 (bytes)"] == "ok"
    assert sum(s == "explained" for s in statuses.values()) >= 1  # checkpointing: RoPE unseen by the hooks

"""The one output seam for `estimate breakeven`, `estimate inspect` and `estimate validate`: ``--format json``
is ``--json``, CSV has its header first and one row per item, two formats are refused in one line. The numbers
are derived by hand: Llama 3 8B from its config.json (32 layers, 8 KV heads of 128), the tiny Llama checkpoint
of tests/test_checkpoint.py from its shapes, GPT-2 from its config (12 layers, 12 heads of 64)."""

from __future__ import annotations

import csv
import io
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from estimator.cli.main import main
from tests.test_checkpoint import DH, PARAMS, D, H, K, L, folder, tensors

KV_BYTES_PER_TOKEN = 2 * 32 * 8 * 128 * 2  # Llama 3 8B: K and V, layers, KV heads, head_dim, bf16: 131,072
LORA_PARAMS = 32 * 32 * (8192 + 5120 + 5120 + 8192 + 3 * 18432)  # r=32 all-linear, as in test_output_seam.py
GPT2_KV_BYTES_PER_TOKEN = 2 * 12 * 12 * 64 * 2  # K and V, layers, heads, head_dim, bf16: 36,864
TWO_FORMATS = [("--json", "--csv"), ("--format", "markdown", "--json"), ("--markdown", "--csv")]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def table(out: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(out)))


def assert_refused(capsys: pytest.CaptureFixture[str], *args: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and err.count("\n") == 1 and "exclude each other" in err


# breakeven

BREAKEVEN = ("breakeven", "--model", "llama3-8b", "--tokens", "1k")


def test_breakeven_in_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert KV_BYTES_PER_TOKEN == 131_072 and LORA_PARAMS == 83_886_080
    code, out, _ = run(capsys, *BREAKEVEN, "--format", "json")
    assert code == 0 and json.loads(out)["kv_cache_bytes_held"] == 1_000 * KV_BYTES_PER_TOKEN
    assert run(capsys, *BREAKEVEN, "--json")[1] == out
    rows = table(run(capsys, *BREAKEVEN, "--format", "csv")[1])
    assert rows[0][:6] == ["way", "flops_once", "flops_per_query", "seconds_once", "seconds_per_query", "serving_bytes"]
    # in context, prefix cached, your run, the run at 1,000 exposures
    assert [r[0] for r in rows[1:3]] == ["in context", "in context, prefix cached"] and len(rows) == 5
    assert rows[1][1] == "0" and int(rows[1][5]) == 1_000 * KV_BYTES_PER_TOKEN  # the context's cache, nothing once
    assert rows[3][0].startswith("LoRA r=32") and int(rows[3][5]) == 2 * LORA_PARAMS  # the bf16 adapter
    assert rows[1][6:] == ["", "", "", ""] and int(rows[3][6]) > 0  # only a fine-tuning run breaks even
    assert run(capsys, *BREAKEVEN, "--csv")[1] == run(capsys, *BREAKEVEN, "--format", "csv")[1]
    markdown = run(capsys, *BREAKEVEN, "--format", "markdown")[1]
    assert "|  | FLOPs once | FLOPs per query | time once | time per query |" in markdown
    assert "| in context | 0 FLOP |" in markdown and "\n- Forward: 2 · N_f FLOPs" in markdown


def test_breakeven_totals_after_some_queries_in_csv(capsys: pytest.CaptureFixture[str]) -> None:
    rows = table(run(capsys, *BREAKEVEN, "--queries", "10", "--csv")[1])
    assert rows[0][-3:] == ["queries", "flops_total", "seconds_total"]
    in_context = rows[1]
    assert in_context[-3] == "10" and int(in_context[-2]) == 10 * int(in_context[2])  # nothing paid once


@pytest.mark.parametrize("args", TWO_FORMATS)
def test_breakeven_refuses_two_formats(capsys: pytest.CaptureFixture[str], args: tuple[str, ...]) -> None:
    assert_refused(capsys, *BREAKEVEN, *args)


# inspect


def adapter_folder(tmp_path: Path) -> tuple[Path, int]:
    """A LoRA r=8 on q_proj and v_proj of the tiny Llama, float32, and its parameters by hand."""
    from safetensors.numpy import save_file

    where = tmp_path / "adapter"
    where.mkdir()
    config = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}
    (where / "adapter_config.json").write_text(json.dumps(config))
    weights = {}
    for i in range(L):
        for name, out_dim in (("q_proj", H * DH), ("v_proj", K * DH)):
            stem = f"base_model.model.model.layers.{i}.self_attn.{name}"
            weights[f"{stem}.lora_A.weight"] = np.zeros((8, D), np.float32)
            weights[f"{stem}.lora_B.weight"] = np.zeros((out_dim, 8), np.float32)
    save_file(weights, str(where / "adapter_model.safetensors"))
    return where, L * 8 * ((D + H * DH) + (D + K * DH))  # r · (d_in + d_out) per map and layer


def test_inspect_a_model_folder_in_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = str(folder(tmp_path, "tiny-llama", tensors()))
    code, out, _ = run(capsys, "inspect", where, "--format", "json")
    assert code == 0 and json.loads(out)["by_dtype"][0]["elements"] == PARAMS
    assert run(capsys, "inspect", where, "--json")[1] == out
    # 2 layers of 9 tensors, the embedding, the final norm and the head: 21 tensors, all F16 (2 bytes each)
    assert table(run(capsys, "inspect", where, "--csv")[1]) == [
        ["dtype", "tensors", "elements", "bytes"],
        ["F16", "21", str(PARAMS), str(2 * PARAMS)],
    ]
    markdown = run(capsys, "inspect", where, "--format", "markdown")[1]
    rule = "|---|---:|---:|---:|"
    assert f"| stored as | tensors | elements | bytes |\n{rule}\n| F16 | 21 | 106,816 | 213,632 |" in markdown


def test_inspect_an_adapter_folder_in_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where, lora = adapter_folder(tmp_path)
    base = str(folder(tmp_path, "base", tensors()))
    code, out, _ = run(capsys, "inspect", str(where), "--base-config", base, "--format", "json")
    assert code == 0 and json.loads(out)["params"] == lora == 3_584
    assert run(capsys, "inspect", str(where), "--base-config", base, "--json")[1] == out
    rows = table(run(capsys, "inspect", str(where), "--base-config", base, "--format", "csv")[1])
    record = dict(zip(rows[0], rows[1], strict=True))
    assert len(rows) == 2 and record["modules"] == "q_proj v_proj" and record["rank"] == "8"
    assert record["params"] == record["estimate_params"] == str(lora) and record["bytes"] == str(4 * lora)
    unnamed = dict(zip(*table(run(capsys, "inspect", str(where), "--csv")[1]), strict=True))
    assert unnamed["base"] == unnamed["estimate_params"] == ""  # no base named: no estimate


@pytest.mark.parametrize("args", TWO_FORMATS)
def test_inspect_refuses_two_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str]) -> None:
    assert_refused(capsys, "inspect", str(folder(tmp_path, "tiny", tensors())), *args)


# validate: the measurement (torch, transformers, peft; tests/test_validate.py) replaced by a hand-made one


def gpt2_validation(spec: Any, differs: bool = False) -> Any:
    from estimator.validate import VersionReport
    from estimator.validate.report import Check, Validation, compare

    checks = (
        compare("KV cache bytes per token (bf16)", GPT2_KV_BYTES_PER_TOKEN, GPT2_KV_BYTES_PER_TOKEN),
        Check("LoRA weights dtype", "bf16", "fp32", "explained", "peft upcasts adapter weights of a bf16 model"),
        compare("KV cache bytes at T = 2 (bf16)", 2 * GPT2_KV_BYTES_PER_TOKEN, 3 * GPT2_KV_BYTES_PER_TOKEN)
        if differs
        else compare("KV cache bytes at T = 2 (bf16)", 2 * GPT2_KV_BYTES_PER_TOKEN, 2 * GPT2_KV_BYTES_PER_TOKEN),
    )
    versions = VersionReport({"torch": "2.13.0", "transformers": "5.24.0", "peft": "0.21.2"}, {})
    return Validation(spec, checks, ("one forward pass under FakeTensorMode",), 1.5, versions)


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch) -> None:
    """`estimate validate` with the measurement above: no torch needed, the peak memory fixed at 1 MiB."""
    import resource

    import estimator.validate

    checks = types.ModuleType("estimator.validate.checks")
    checks.validate = lambda q: gpt2_validation(q.spec, differs=q.rank == 5)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "estimator.validate.checks", checks)
    monkeypatch.setattr(estimator.validate, "require_extra", lambda: None)
    monkeypatch.setattr(resource, "getrusage", lambda who: types.SimpleNamespace(ru_maxrss=1_024))


def test_validate_in_every_format(measured: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert GPT2_KV_BYTES_PER_TOKEN == 36_864
    code, out, _ = run(capsys, "validate", "--model", "gpt2", "--format", "json")
    assert code == 0 and json.loads(out)["peak_rss_bytes"] == 2**20
    assert run(capsys, "validate", "--model", "gpt2", "--json")[1] == out
    rows = table(run(capsys, "validate", "--model", "gpt2", "--format", "csv")[1])
    assert rows[0] == ["model", "quantity", "estimate", "measured", "status", "note"] and len(rows) == 4
    assert rows[1] == ["gpt2", "KV cache bytes per token (bf16)", "36864", "36864", "ok", ""]
    assert (
        run(capsys, "validate", "--model", "gpt2", "--csv")[1]
        == run(capsys, "validate", "-m", "gpt2", "--format", "csv")[1]
    )
    markdown = run(capsys, "validate", "--model", "gpt2", "--markdown")[1]
    assert "| KV cache bytes per token (bf16) | 36,864 | 36,864 | 0 | ✔ |" in markdown
    assert "| LoRA weights dtype | bf16 | fp32 | differs | ✔* |" in markdown and "\n- one forward pass" in markdown
    text = run(capsys, "validate", "--model", "gpt2")[1]
    assert "36,864" in text and "Validated in 1.5 s; peak memory of this process 1.00 MiB (RSS)." in text


def test_a_disagreement_is_written_then_exits_1(measured: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", "--model", "gpt2", "--rank", "5", "--csv")
    assert code == 1 and table(out)[3][2:5] == [str(2 * GPT2_KV_BYTES_PER_TOKEN), str(3 * 36_864), "differs"]


@pytest.mark.parametrize("args", TWO_FORMATS)
def test_validate_refuses_two_formats(measured: None, capsys: pytest.CaptureFixture[str], args: tuple[str]) -> None:
    assert_refused(capsys, "validate", "--model", "gpt2", *args)

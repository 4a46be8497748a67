"""The `estimate` command: the headline output, formats, and one-line errors with exit status 2."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from estimator.cli import main

from .conftest import CONFIGS


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_headline_query(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--model", "llama3-70b", "--tokens", "100k", "--rank", "32")
    assert code == 0 and err == ""
    for text in (
        "Llama 3 70B",
        "70,553,706,496 parameters",
        "80 layers",
        "64 query / 8 KV heads",
        "head_dim 128",
        "327,680",
        "32.77 GB",
        "414,187,520",
        "828,375,040",
        "8,283.75",
        "39.6x",
        "141.11 GB",
        "0.00941",
        "2,528 tokens",
        "r = 1,266",
        "23.2%",
        "15T",
        "Assumptions:",
        "q_proj, k_proj, v_proj, o_proj, gate_proj",
        "bf16",
        "context window of 8,192",
    ):
        assert text in out, text


def test_json_has_units_in_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--model", "llama3-70b", "--tokens", "100k", "--rank", "32", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["kv_cache"]["bytes_per_token"] == 327_680
    assert data["lora"]["bytes"] == 828_375_040
    assert data["pretraining"]["weights_bytes"] == 141_107_412_992
    assert data["parity_rank"] == 1_266 and data["crossover_tokens"] == 2_528
    assert data["query"]["target_modules"][0] == "self_attn.q_proj"
    assert any("2 (K and V) × 80 layers" in line for line in data["assumptions"])


def test_csv(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--model", "llama3-70b", "--csv")
    assert code == 0
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO(out))}
    assert list(rows) == ["kv", "lora", "dora", "ia3", "loreft", "prefix", "prompt", "full", "pretraining"]
    assert int(rows["lora"]["params"]) == 414_187_520 and float(rows["kv"]["bytes_per_token"]) == 327_680


def test_options_change_the_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(
        capsys,
        "--model",
        "llama3-70b",
        "--targets",
        "qv",
        "--rank",
        "8",
        "--kv-dtype",
        "fp8",
        "--adapter-dtype",
        "fp32",
        "--weights-dtype",
        "fp16",
        "--pretraining-tokens",
        "1T",
        "--json",
    )
    data = json.loads(out)
    assert data["kv_cache"]["bytes_per_token"] == 2 * 80 * 8 * 128 * 1
    assert data["lora"]["params"] == 80 * 8 * ((8192 + 8192) + (8192 + 1024))
    assert data["lora"]["bytes"] == 4 * data["lora"]["params"]
    assert data["pretraining"]["bytes_per_token"] == 2 * 70_553_706_496 / 1e12


def test_config_path(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--config", str(CONFIGS / "extra" / "llama3.2-1b.json"), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["model"]["params"] == 1_235_814_400  # tied embeddings counted once
    assert data["kv_cache"]["bytes_per_token"] == 2 * 16 * 8 * 64 * 2


def test_models_lists_the_zoo(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert "llama3-70b" in out and "70,553,706,496" in out and "327,680" in out and "huggingface.co" in out
    code, out, _ = run(capsys, "models", "--json")
    names = [m["name"] for m in json.loads(out)]
    assert "gpt2" in names and "falcon-7b" in names


def test_models_give_the_rate_at_a_stated_token_count(capsys: pytest.CaptureFixture[str]) -> None:
    """The rate at one token misleads for windowed models: Gemma 3 27B is 507,904 B per cached token but, at
    1M tokens, 52 local layers hold 1,024 tokens and 10 global ones all of them (62 layers, 16 KV heads, 128)."""
    per_layer = 2 * 16 * 128 * 2  # K and V, 16 KV heads, head_dim 128, bf16
    at_1m = (10 * 1_000_000 + 52 * 1_024) * per_layer / 1_000_000  # 82,356.2...
    code, out, _ = run(capsys, "models", "--tokens", "1M", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["gemma3-27b"]["kv_bytes_per_token"] == pytest.approx(at_1m, rel=1e-12)
    assert rows["gemma3-27b"]["kv_bytes_per_cached_token_bf16"] == 62 * per_layer == 507_904
    mistral = rows["mistral-7b-v0.1"]  # every layer windowed: it holds 4,096 tokens, no rate of the text
    assert mistral["tokens_held"] == 4_096 and not mistral["holds_all_tokens"] and mistral["kv_bytes_per_token"] is None
    limited = [r for r in rows.values() if r["context_window_tokens"] is not None]  # a pure SSM has no window
    assert len(limited) < len(rows) and all(r["beyond_context_window"] for r in limited)  # none reads 1M at once
    code, out, _ = run(capsys, "models", "--tokens", "1M", "--sort", "kv")
    lines = [line.split()[0] for line in out.splitlines()[1:] if line and not line.startswith("KV")]
    assert lines.index("gemma3-27b") < lines.index("llama3-8b") and lines[-2:] == ["mistral-7b-v0.1", "phi3-mini"]
    assert "82,356.21" in out and "4,096 (window)" in out and "KV B/token at 1M" in out
    code, _, err = run(capsys, "models", "--sort", "speed")
    assert code != 0 and "--sort 'speed'" in err and "name, params, kv" in err


def test_a_windowed_cache_past_its_window_has_no_rate_per_token(capsys: pytest.CaptureFixture[str]) -> None:
    """Mistral 7B v0.1 at 1M keeps the last 4,096 tokens: no 537 B/token, no 3.2x, no parity rank 103."""
    code, out, _ = run(capsys, "--model", "mistral-7b-v0.1", "--tokens", "1M", "--json")
    data = json.loads(out)
    assert code == 0 and data["tokens_held"] == 4_096 and data["holds_all_tokens"] is False
    assert data["kv_cache"]["bytes"] == 4_096 * 131_072 and data["kv_cache"]["bytes_per_token"] is None
    assert all(r["kv_to_this_bytes_ratio"] is None for r in data["methods"])
    assert data["kv_to_lora_bytes_ratio"] is None and data["parity_rank"] is None
    lora = next(r for r in data["methods"] if r["method"] == "lora")
    assert lora["bytes_per_token"] == lora["bytes"] / 1_000_000  # the adapter's own rate stands
    code, out, _ = run(capsys, "--model", "mistral-7b-v0.1", "--tokens", "1M")
    assert "holds only the last 4,096 of the 1,000,000 tokens" in out and "Parity rank" not in out
    kv_row = next(line for line in out.splitlines() if line.startswith("in context"))
    assert kv_row.split()[-2:] == ["—", "—"]
    code, out, _ = run(capsys, "--model", "mistral-7b-v0.1", "--tokens", "4096", "--json")
    assert json.loads(out)["holds_all_tokens"] and json.loads(out)["kv_cache"]["bytes_per_token"] == 131_072


def test_context_window_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """Llama 3 70B's window is 8,192 tokens: the default 100k exceeds it; Llama 3.1's 131,072 does not."""
    for model, beyond in (("llama3-70b", True), ("llama3.1-70b", False)):
        code, out, _ = run(capsys, "--model", model, "--json")
        assert code == 0 and json.loads(out)["beyond_context_window"] is beyond
        assert json.loads(out)["tokens_held"] == 100_000


def test_a_config_is_named_from_its_contents(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Not after its folder ("extra", a snapshot's hash): `_name_or_path`, the file, architectures, --name."""
    config = json.loads((CONFIGS / "extra" / "llama3.2-1b.json").read_text())
    code, out, _ = run(capsys, "--config", str(CONFIGS / "extra" / "llama3.2-1b.json"), "--json")
    assert json.loads(out)["model"]["name"] == "llama3.2-1b"  # the file's stem
    snapshot = tmp_path / "0123abcd" / "config.json"
    snapshot.parent.mkdir()
    snapshot.write_text(json.dumps({**config, "_name_or_path": "meta-llama/Llama-3.2-1B"}))
    code, out, _ = run(capsys, "--config", str(snapshot), "--json")
    assert json.loads(out)["model"]["name"] == "llama-3.2-1b"
    assert json.loads(out)["model"]["display_name"] == "meta-llama/Llama-3.2-1B"
    config.pop("_name_or_path", None)
    snapshot.write_text(json.dumps(config))
    code, out, _ = run(capsys, "--config", str(snapshot), "--json")
    assert json.loads(out)["model"]["display_name"] == config["architectures"][0] == "LlamaForCausalLM"
    code, out, _ = run(capsys, "--config", str(snapshot), "--name", "mine", "--json")
    assert json.loads(out)["model"]["name"] == "mine"
    code, _, err = run(capsys, "--model", "gpt2", "--name", "mine")
    assert code != 0 and "--name names a --config model" in err


def test_beyond_full_rank_is_refused_then_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--model", "llama3-70b", "--rank", "2048")
    assert code == 2 and "full rank" in err and "1,024" in err and "--allow-beyond-full-rank" in err
    code, out, err = run(capsys, "--model", "llama3-70b", "--rank", "2048", "--allow-beyond-full-rank")
    assert code == 0 and err.startswith("warning:") and "beyond the full rank" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "llama3-7b"], "did you mean llama3-70b"),
        (["--model", "llama3-70b", "--tokens", "abc"], "cannot read token count"),
        (["--model", "llama3-70b", "--tokens", "0"], "must be positive"),
        (["--model", "llama3-70b", "--tokens", "-5"], "cannot read token count"),
        (["--model", "llama3-70b", "--rank", "0"], "at least 1"),
        (["--model", "llama3-70b", "--rank", "-3"], "at least 1"),
        (["--model", "llama3-70b", "--rank", "x"], "--rank"),
        (["--model", "llama3-70b", "--kv-dtype", "int3"], "fp32, bf16, fp16, fp8, int8"),
        (["--model", "llama3-70b", "--adapter-dtype", "fp8"], "bf16, fp16, fp32"),
        (["--model", "llama3-70b", "--targets", "foo"], "unknown target 'foo'"),
        (["--model", "phi3-mini", "--targets", "qv"], "qkv_proj"),
        (["--config", "/no/such/config.json"], "not found"),
        (["--config", str(CONFIGS / "gpt2.json"), "--model", "gpt2"], "not both"),
        ([], "no model given"),
        (["--model", "llama3-70b", "--json", "--csv"], "exclude each other"),
        (["--bogus"], "No such option"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], needle: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert needle in err
    assert "Traceback" not in err


def test_bad_config_json_names_the_field(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = json.loads((CONFIGS / "llama3-8b.json").read_text())
    del config["intermediate_size"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    code, _, err = run(capsys, "--config", str(path))
    assert code == 2 and "'intermediate_size'" in err and err.count("\n") == 1


def test_installed_entry_point_and_light_imports() -> None:
    """The plain query as a user runs it: exit 0, and no numpy, pandas, matplotlib or torch loaded."""
    code = (
        "import sys\n"
        "from estimator.cli import main\n"
        "rc = main(['--model', 'llama3-70b', '--tokens', '100k', '--rank', '32'])\n"
        "heavy = sorted(m for m in ('numpy', 'pandas', 'matplotlib', 'torch', 'estimator.cli.figures', 'starlette',"
        " 'uvicorn', 'safetensors', 'gguf', 'estimator.stores.tuner_kinds', 'estimator.frontier',"
        " 'estimator.layout.latent') if m in sys.modules)\n"
        "print('HEAVY', heavy, rc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY [] 0" in result.stdout


def test_architecture_options(capsys: pytest.CaptureFixture[str]) -> None:
    def payload(*args: str) -> dict:  # type: ignore[type-arg]
        code, out, err = run(capsys, *args, "--json")
        assert code == 0, err
        return json.loads(out)  # type: ignore[no-any-return]

    v3 = payload("--model", "deepseek-v3", "--mla-cache", "expanded")
    assert v3["kv_cache"]["bytes_per_token"] == 61 * 128 * 320 * 2
    assert payload("--model", "llama3-70b", "--kv-dtype", "int4")["kv_cache"]["bytes_per_token"] == 92_160
    quiet = payload("--model", "llama3-70b", "--kv-dtype", "int4", "--kv-group-size", "0")
    assert quiet["kv_cache"]["bytes_per_token"] == 81_920
    phi = payload("--model", "phi3-mini", "--window-cache", "w-1")
    assert phi["kv_cache"]["bytes"] == 2046 * 2 * 32 * 32 * 96 * 2
    mixtral = payload("--model", "mixtral-8x7b", "--experts", "fused", "--rank", "8")
    assert mixtral["query"]["target_parameters"] == ["mlp.gate", "mlp.experts.gate_up_proj", "mlp.experts.down_proj"]
    assert "dora" not in [m["method"] for m in mixtral["methods"]]
    picked = payload("--model", "llama3-70b", "--methods", "lora,prompt", "--virtual-tokens", "5")
    assert [m["method"] for m in picked["methods"]] == ["kv", "lora", "prompt"]
    assert picked["methods"][2]["params"] == 5 * 8192


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--experts", "foo"], "per-expert, fused, none"),
        (["--mla-cache", "foo"], "latent, expanded"),
        (["--window-cache", "w+1"], "w, w-1"),
        (["--kv-dtype", "int3"], "int4, int2"),
        (["--kv-group-size", "-1"], "--kv-group-size"),
        (["--virtual-tokens", "0"], "--virtual-tokens"),
        (["--loreft-rank", "0"], "--loreft-rank"),
        (["--loreft-layers", "99"], "layers 0 to 79"),
        (["--loreft-positions", "x"], "f7+l7"),
        (["--methods", "bogus"], "unknown method"),
        (["--ia3-targets", "foo"], "unknown target 'foo'"),
        (["--weights-dtype", "int4"], "fp32, bf16, fp16, fp8, int8"),
    ],
)
def test_bad_architecture_options(capsys: pytest.CaptureFixture[str], args: list[str], needle: str) -> None:
    code, out, err = run(capsys, "--model", "llama3-70b", *args)
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err, err

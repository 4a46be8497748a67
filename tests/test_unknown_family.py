"""A model no family knows is measured from transformers and peft, labelled so, and checked here by hand.

The config is a small Helium (transformers' ``helium``, which the estimator has no family for): 4 layers,
d = 256, 8 query heads and 2 KV heads of 32, MLP 512, vocabulary 1,000, untied head."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from estimator.errors import UnknownFamilyError
from estimator.hf_config import spec_from_hf_config

from .test_cli import run

CONFIG = {
    "model_type": "helium", "_name_or_path": "kyutai/helium-tiny-test", "hidden_size": 256,
    "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2,
    "head_dim": 32, "vocab_size": 1000, "max_position_embeddings": 4096, "tie_word_embeddings": False,
}  # fmt: skip
D, F, L, V, KV_WIDTH = 256, 512, 4, 1000, 2 * 32
PER_LAYER = 2 * D * D + 2 * D * KV_WIDTH + 3 * D * F + 2 * D  # q, o; k, v; gate, up, down; two RMSNorms
PARAMS = 2 * V * D + L * PER_LAYER + D  # embeddings, untied head, layers, final norm: 2,742,528
LORA_R8 = 8 * L * ((D + D) * 2 + (D + KV_WIDTH) * 2 + (D + F) * 3)  # r (d_in + d_out) per map: 126,976


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    return path


def test_no_family_knows_it(config: Path) -> None:
    with pytest.raises(UnknownFamilyError, match="'helium' is not a family the estimator knows"):
        spec_from_hf_config(config)


@pytest.mark.validation
def test_the_main_query_measures_it_exactly(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    pytest.importorskip("peft")
    code, out, err = run(capsys, "--config", str(config), "--tokens", "1000", "--rank", "8", "--json")
    assert code == 0 and err == "", err  # torch's own log stays in the child
    data = json.loads(out)
    rows = {r["method"]: r for r in data["methods"]}
    assert data["measured"] is True and data["model"]["params"] == PARAMS == 2_742_528
    assert data["kv_cache"]["bytes"] == 2 * L * 2 * 32 * 2 * 1000  # K and V, 4 layers, 2 heads of 32, bf16
    assert rows["lora"]["params"] == LORA_R8 == 126_976 and rows["lora"]["bytes"] == 2 * LORA_R8
    assert rows["dora"]["params"] == LORA_R8 + L * (D + KV_WIDTH + KV_WIDTH + D + F + F + D)  # + d_out per map
    assert rows["prompt"]["params"] == 20 * D and rows["full"]["params"] == PARAMS
    assert rows["ia3"]["refused"] and rows["loreft"]["refused"] and rows["prefix"]["refused"]
    code, out, _ = run(capsys, "--config", str(config), "--tokens", "1000", "--rank", "8")
    assert code == 0 and "measured from the model transformers builds" in out and "Not measured:" in out
    assert "IA3: no default is known for model_type 'helium'" in out


def test_without_the_extra_the_refusal_names_it(
    capsys: pytest.CaptureFixture[str], config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    code, out, err = run(capsys, "--config", str(config))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "not a family the estimator knows" in err and 'pip install -e ".[validate]"' in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--targets", "qv"], "--targets needs a family the estimator knows"),
        (["--experts", "fused"], "--experts needs a family"),
    ],
)
def test_options_that_need_a_family_are_refused(
    capsys: pytest.CaptureFixture[str], config: Path, args: list[str], needle: str
) -> None:
    pytest.importorskip("peft")
    code, out, err = run(capsys, "--config", str(config), *args)
    assert code == 2 and out == "" and needle in err and err.count("\n") == 1


def test_other_commands_refuse_it_in_one_line(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    for command in (["sweep"], ["compare", "-t", "1k"], ["plot", "tokens"], ["breakeven"], ["capacity"]):
        code, out, err = run(capsys, *command, "--config", str(config))
        assert code == 2 and out == "" and err.count("\n") == 1, command
        assert "measures it from transformers" in err, command


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"num_hidden_layers": 100_000}, "layers 100,000 is over the 512"),
        ({"text_config": {"n_layer": 4096}}, "layers 4,096 is over the 512"),
        ({"num_experts": 100_000}, "experts 100,000 is over the 1,024"),
        ({"num_experts": 1000, "num_hidden_layers": 500}, "expert modules (layers × experts): 500,000"),
        ({"vocab_size": 10**9}, "a vocabulary of 1,000,000,000"),
        ({"intermediate_size": 10**8}, "a width of 100,000,000"),
        ({"hidden_size": 2**20, "num_hidden_layers": 500}, "parameters, over the 1e+13"),
    ],
)
def test_a_monstrous_unknown_config_is_refused_before_anything_is_built(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, change: dict[str, object], needle: str
) -> None:
    import time

    path = tmp_path / "config.json"
    path.write_text(json.dumps({**CONFIG, **change}))
    start = time.perf_counter()
    code, out, err = run(capsys, "--config", str(path))
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err, err
    assert time.perf_counter() - start < 2


@pytest.mark.validation
@pytest.mark.parametrize(
    ("limit", "value", "needle"),
    [("MEASURE_SECONDS", 0.5, "took over 0.5 s and was stopped"), ("MEASURE_MEMORY_BYTES", 200 * 2**20, "failed")],
)
def test_the_measurement_runs_in_a_bounded_child(
    capsys: pytest.CaptureFixture[str], config: Path, monkeypatch: pytest.MonkeyPatch, limit: str, value: float,
    needle: str,
) -> None:  # fmt: skip
    pytest.importorskip("peft")
    from estimator.validate import child

    monkeypatch.setattr(child, limit, value)
    code, out, err = run(capsys, "--config", str(config))
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err, err
    assert "Traceback" not in err

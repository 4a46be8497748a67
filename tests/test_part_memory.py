"""``--part language|all`` in ``estimate serve-memory`` and ``estimate train-memory``: a multimodal checkpoint's
language model (the default) or its whole model, vision tower and projector included.

The counts are transformers' (``tests/test_part_option.py`` builds Gemma3ForConditionalGeneration on the meta
device from the same config): Gemma 3 27B's language model 27,009,346,304 parameters, the whole model
27,432,406,640, so the tower and projector hold P = 423,060,336. Every expected byte below is P times the bytes a
parameter takes, written by hand; the KV cache and the activations stay the language model's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_cli import run

GEMMA3 = str(Path(__file__).parent / "data" / "hf_configs" / "gemma3-27b.json")
LANGUAGE, WHOLE = 27_009_346_304, 27_432_406_640
OUTSIDE = WHOLE - LANGUAGE  # 416,866,032 in the SigLIP tower + 6,194,304 in the projector
WHOLE_WORDS = (
    "; whole model (language model 27,009,346,304 + vision tower (SigLIP) 416,866,032 + projector 6,194,304); "
    "the KV cache and adapters are the language model's"
)  # the main query's words (tests/test_part_option.py)
LANGUAGE_WORDS = "; language model of a multimodal checkpoint; --part all for the whole model"


def answer(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, dict]:
    """(the first line printed, the --json record) of one command line."""
    code, out, err = run(capsys, *args)
    assert code == 0 and err == "", err
    code, record, err = run(capsys, *args, "--json")
    assert code == 0 and err == "", err
    return out.splitlines()[0], json.loads(record)


def test_serve_memory_loads_the_tower_with_the_weights(capsys: pytest.CaptureFixture[str]) -> None:
    """bf16: 2 bytes per parameter, the tower split over the TP GPUs: 2 P = 846,120,672 bytes more weights at
    TP 1 and ⌈2 P / 4⌉ = 211,530,168 at TP 4, the KV pool as much smaller; the cache per sequence unchanged."""
    args = ("serve-memory", "--config", GEMMA3, "--tp", "1,4", "--tokens", "8192")
    first, language = answer(capsys, *args)
    assert first.endswith(LANGUAGE_WORDS)
    assert (language["params"], language["part"]) == (LANGUAGE, "language")
    first, whole = answer(capsys, *args, "--part", "all")
    assert first.endswith(WHOLE_WORDS)
    assert (whole["params"], whole["part"], whole["part_counted"]) == (WHOLE, "all", WHOLE_WORDS.removeprefix("; "))
    for pool_l, pool_w, more in zip(language["pools"], whole["pools"], (846_120_672, 211_530_168), strict=True):
        assert 2 * OUTSIDE == 846_120_672 and -(-2 * OUTSIDE // 4) == 211_530_168
        assert pool_w["weights_bytes"] - pool_l["weights_bytes"] == more
        assert pool_l["kv_pool_bytes"] - pool_w["kv_pool_bytes"] == more
        assert pool_w["reserves"] == pool_l["reserves"]
    assert [r["cache_bytes_per_gpu"] for r in whole["rows"]] == [r["cache_bytes_per_gpu"] for r in language["rows"]]
    assert any("416,866,032" in a and "vLLM shards" in a for a in whole["assumptions"])
    assert not any("--part all" in a for a in language["assumptions"])


def test_train_memory_trains_or_freezes_the_tower(capsys: pytest.CaptureFixture[str]) -> None:
    """Full fine-tuning, mixed precision with AdamW, trains P more: bf16 weights 2 P, gradients 2 P, fp32 master
    4 P, fp32 m and v 8 P plus AdamW's 4-byte step for each of the two added tensors. LoRA keeps them frozen in
    bf16 (2 P); QLoRA leaves them unquantised, cast to fp32 by prepare_model_for_kbit_training (4 P).
    Activations are the language model's."""
    args = ("train-memory", "--config", GEMMA3, "--way", "lora,qlora,full", "--tokens", "512", "--memory", "1TiB")
    first, language = answer(capsys, *args)
    assert first.endswith(LANGUAGE_WORDS) and language["params"] == LANGUAGE
    first, whole = answer(capsys, *args, "--part", "all")
    assert first.endswith(WHOLE_WORDS)
    assert (whole["params"], whole["part"], whole["part_counted"]) == (WHOLE, "all", WHOLE_WORDS.removeprefix("; "))
    ways = {w["way"]: w for w in language["ways"]}, {w["way"]: w for w in whole["ways"]}

    def more(way: str, field: str) -> int:
        return ways[1][way][field] - ways[0][way][field]

    assert more("full", "trainable_weights_bytes") == 2 * OUTSIDE == 846_120_672
    assert more("full", "gradient_bytes") == 2 * OUTSIDE
    assert more("full", "master_weights_bytes") == 4 * OUTSIDE == 1_692_241_344
    assert more("full", "optimizer_bytes") == 8 * OUTSIDE + 2 * 4 == 3_384_482_696
    assert more("full", "frozen_weights_bytes") == 0
    assert more("lora", "frozen_weights_bytes") == 2 * OUTSIDE
    assert more("qlora", "frozen_weights_bytes") == 4 * OUTSIDE == 1_692_241_344
    for way in ("lora", "qlora"):
        assert more(way, "trainable_weights_bytes") == more(way, "optimizer_bytes") == 0
    for way in ("lora", "qlora", "full"):
        assert more(way, "activation_bytes") == more(way, "logits_bytes") == 0
    assert any("text alone" in a and "416,866,032" in a for a in whole["assumptions"])


@pytest.mark.parametrize("command", ["serve-memory", "train-memory"])
def test_a_text_model_with_part_all_is_the_same_answer(capsys: pytest.CaptureFixture[str], command: str) -> None:
    """As the main query: Llama 3 8B is its own whole model, the same numbers and no words on the part; the JSON
    says part "all", counted as "whole model = language model"."""
    args = (command, "--model", "llama3-8b", "--tokens", "1024")
    assert run(capsys, *args) == run(capsys, *args, "--part", "all")
    _, language = answer(capsys, *args)
    _, whole = answer(capsys, *args, "--part", "all")
    assert (whole["params"], whole["part"]) == (8_030_261_248, "all")
    assert whole["part_counted"] == "whole model = language model"
    assert {**whole, "part": "language"} == language


@pytest.mark.parametrize("command", ["serve-memory", "train-memory"])
def test_a_zoo_wrapper_with_part_all_is_refused_in_one_line(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, err = run(capsys, command, "--model", "gemma3-27b", "--part", "all")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "for --part all pass --config with the checkpoint's config.json, or use --part language" in err


def test_the_web_api_takes_part() -> None:
    from estimator.errors import EstimatorError
    from estimator.web.commands import serve_memory_record, train_memory_record

    assert serve_memory_record({"model": "llama3-8b", "part": "all"})["part"] == "all"
    assert train_memory_record({"model": "llama3-8b", "part": "all"})["part_counted"] == "whole model = language model"
    with pytest.raises(EstimatorError, match="use --part language"):
        train_memory_record({"model": "gemma3-27b", "part": "all"})

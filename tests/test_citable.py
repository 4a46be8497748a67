"""What a researcher cites with: a licence, CITATION.cff, one version everywhere (--version, JSON,
pyproject, CITATION.cff, CHANGELOG), py.typed, dir(estimator), and estimate() taking every CLI option.

Numbers by hand from the real configs:
- Llama 3 70B, int4 cache with one scale per tensor (--kv-group-size 0): 2 · 80 · 8 · 128 · 4 bits / 8
  = 81,920 bytes per token.
- DeepSeek-V3 with the expanded MLA cache: 61 layers · 128 heads · (192 + 128) · 2 bytes = 4,997,120.
- Gemma 2 9B at 100,000 tokens, window convention w − 1: 21 global layers hold 100,000 tokens and 21
  sliding layers 4,095, each 2 · 8 · 256 · 2 = 8,192 bytes per token: 8,192 · 21 · 104,095 = 17,907,671,040.
- Qwen3-Next-80B-A3B with --conv-cache K and --state-dtype fp32: 36 DeltaNet layers of 8,192 × 4 conv
  inputs in bf16 (65,536 bytes) and 524,288 state elements in fp32 (2,097,152 bytes) = 77,856,768.
"""

from __future__ import annotations

import inspect
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

import estimator
from estimator import EstimatorError, estimate, load_spec
from estimator.layout import KVFormat
from estimator.units import DType

from .test_cli import run

ROOT = Path(__file__).resolve().parent.parent


def test_one_version_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert estimator.__version__ == version
    assert yaml.safe_load((ROOT / "CITATION.cff").read_text())["version"] == version
    first = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), flags=re.MULTILINE)
    assert first is not None and first.group(1) == version
    code, out, err = run(capsys, "--version")
    assert (code, out, err) == (0, f"estimator {version}\n", "")
    for args in (["--model", "gpt2", "--json"], ["capacity", "--model", "gpt2", "--json"],
                 ["breakeven", "--model", "gpt2", "--json"]):  # fmt: skip
        code, out, _ = run(capsys, *args)
        assert code == 0 and json.loads(out)["estimator_version"] == version, args


def test_licence_and_citation() -> None:
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License\n") and "WITHOUT WARRANTY OF ANY KIND" in licence
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT" and cff["type"] == "software"
    assert cff["title"].startswith("estimator") and cff["authors"] and cff["message"]


def test_typed_package() -> None:
    assert (ROOT / "estimator" / "py.typed").is_file()
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["packages"] == ["estimator"] and "exclude" not in wheel  # hatch ships every file of the package


def test_dir_lists_the_lazy_api() -> None:
    names = dir(estimator)
    for name in ("estimate", "evaluate", "load_spec", "Estimate", "Query", "Crossover", "query_from_options"):
        assert name in names
    assert set(estimator.__all__) <= set(names)


def test_estimate_takes_every_cli_option() -> None:
    from estimator.query import query_from_options
    from estimator.query.options import OPTION_NAMES as QUERY_OPTION_NAMES

    taken = set(inspect.signature(estimate).parameters) | {"model", "config"}  # the model: a spec, name or path
    assert set(QUERY_OPTION_NAMES) <= taken | {"spec"}
    assert inspect.signature(estimate).parameters.keys() == inspect.signature(query_from_options).parameters.keys()


def test_estimate_reads_options_as_the_cli_does() -> None:
    assert estimate("llama3-70b", tokens="1M").tokens == 1_000_000
    assert estimate("llama3-70b", "100k", pretraining_tokens="15T").pretraining_tokens == 15 * 10**12
    assert estimate("llama3-70b", kv_dtype="int4", kv_group_size=0).kv_bytes_per_token_unbounded == 81_920
    assert estimate("deepseek-v3", "1k", mla_cache="expanded").kv_bytes_per_token_unbounded == 61 * 128 * 320 * 2
    gemma = estimate("gemma2-9b", "100k", window_cache="w-1")
    assert gemma.kv_cache_bytes == 8_192 * 21 * (100_000 + 4_095) == 17_907_671_040
    qwen = estimate("qwen3-next-80b-a3b", "1k", conv_cache="K", state_dtype="fp32", methods="kv,lora")
    assert qwen.kv_state_bytes == 36 * (8_192 * 4 * 2 + 524_288 * 4) == 77_856_768
    assert [m.value for m in qwen.methods] == ["kv", "lora"]
    reft = estimate(load_spec("llama3-70b"), loreft_rank=4, loreft_layers="0,4", loreft_positions="f5").query.loreft
    assert (reft.rank, reft.layers, reft.prefix_positions, reft.suffix_positions) == (4, (0, 4), 5, 0)
    config = ROOT / "tests" / "data" / "hf_configs" / "extra" / "llama3.2-1b.json"
    assert estimate(config, name="mine").spec.name == "mine"


def test_estimate_refuses_what_the_cli_refuses() -> None:
    for kwargs, needle in (
        ({"tokens": "lots"}, "cannot read token count 'lots'"),
        ({"tokens": 0}, "token count 0 must be at least 1"),
        ({"kv_dtype": KVFormat(DType.int4), "loreft": None, "kv_group_size": -1}, "--kv-group-size -1"),
        ({"mla_cache": "dense"}, "unknown MLA cache form 'dense'"),
        ({"state_dtype": "int8"}, "state dtype"),
    ):
        with pytest.raises(EstimatorError, match=re.escape(needle)):
            estimate("llama3-70b", **kwargs)
    with pytest.raises(EstimatorError, match="unknown model"):
        estimate("nonesuch")

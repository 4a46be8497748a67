"""Validation: spec -> transformers config round trip (no torch), and real measurements (torch)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from estimator.architecture import layout_of
from estimator.cli import main
from estimator.errors import EstimatorError
from estimator.hf_config import spec_from_hf_config
from estimator.kv import KVFormat, MlaCache, kv_bytes_per_token
from estimator.query import Query
from estimator.specs import ModelSpec
from estimator.transformers_rules import fp32_weights
from estimator.units import DType
from estimator.validate import VersionReport, read_pins, require_extra
from estimator.validate.hf import transformers_config, twin_spec
from estimator.zoo import load_all_specs, load_spec

from .conftest import CONFIGS, EXTRA_CONFIGS
from .test_specs import PROVENANCE

ROOT = Path(__file__).resolve().parent.parent
ALL_SPECS = load_all_specs() + [spec_from_hf_config(p) for p in EXTRA_CONFIGS]


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.name)
def test_transformers_config_round_trips(spec: ModelSpec, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(transformers_config(spec)))
    again = spec_from_hf_config(path, name=spec.name)
    drop = PROVENANCE | {"torch_dtype"}
    assert again.to_dict(exclude=drop) == spec.to_dict(exclude=drop)


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.name)
def test_twin_keeps_every_kind_of_layer(spec: ModelSpec) -> None:
    """The twin the real adapter is saved on: the same heads, one layer of each kind, a tiny vocabulary."""
    twin, _ = twin_spec(spec, 64)
    assert (twin.num_key_value_heads, twin.head_dim, twin.num_attention_heads) == (
        spec.num_key_value_heads,
        spec.head_dim,
        spec.num_attention_heads,
    )
    assert set(twin.layer_windows()) == set(spec.layer_windows())
    kinds = {(g.mixer.kind, g.moe is not None) for g in layout_of(spec).groups}
    assert twin.num_hidden_layers <= max(2, len(kinds)) and twin.vocab_size == 128
    if any(not g.mixer.vectors(KVFormat()) for g in layout_of(spec).groups):  # recurrent, MLP-only or shared-KV
        return  # layers: a twin of one layer per kind cannot keep their proportion of the cache
    for mla in MlaCache:
        fmt = KVFormat(DType.bf16, mla=mla)
        assert kv_bytes_per_token(twin, fmt) * spec.num_hidden_layers == (
            kv_bytes_per_token(spec, fmt) * twin.num_hidden_layers
        )


def test_missing_extra_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # peft alone missing where the rest is installed, every extra package where none is: the line names
    # exactly what find_spec does not find, wherever the test runs (with or without torch)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "peft" else real(name))
    missing = [name for name in ("torch", "transformers", "peft", "safetensors", "bitsandbytes") if name == "peft"
               or real(name) is None]  # fmt: skip
    with pytest.raises(EstimatorError, match=r"pip install torch==2\.13\.0"):
        require_extra()
    assert main(["validate", "--model", "gpt2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: validation needs {', '.join(missing)}, which are not installed")
    assert err.count("\n") == 1


def test_validate_rejects_unmeasurable_kv_dtype(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    assert main(["validate", "--model", "gpt2", "--kv-dtype", "int8"]) == 2
    assert "cannot be measured" in capsys.readouterr().err


# --- measurements: need torch, transformers and peft -------------------------------------------


@pytest.fixture(scope="module")
def checks_module():  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    from estimator.validate import checks

    return checks


# transformers 5.24 keeps DeepSeek's router weight (mlp.gate, E × d) in float32 and peft creates its LoRA in
# float32 too: the twin's saved bf16 adapter holds 2 extra bytes per router LoRA parameter. Twin: 2 layers,
# 2 experts, hidden = heads × ⌈32 / heads⌉; at r = 16, 2 layers × 16 × (hidden + 2) × (4 − 2) bytes
# (DeepSeek-V2-Lite, 16 heads: 2,176 = 702,720 measured − 700,544; DeepSeek-V3, 128 heads: 8,320).
def router_fp32_extra_bytes(spec: ModelSpec) -> int:
    heads = spec.num_attention_heads or 1
    return 2 * 16 * (heads * -(-32 // heads) + 2) * 2


# One zoo model per structure is measured in full here (the suite's time budget): the others differ from one of
# these only in sizes, and their parameters and LoRA are compared with transformers and peft for every zoo model
# in tests/test_transformers_oracle.py.
SAME_STRUCTURE_AS = {
    "kimi-k2": "deepseek-v3", "llama2-13b": "llama2-7b", "llama2-70b": "llama3-70b", "llama3-8b": "llama3-70b",
    "llama3.1-8b": "llama3-70b", "llama3.1-70b": "llama3-70b", "llama3.1-405b": "llama3-70b",
    "mistral-7b-v0.3": "mistral-7b-v0.1", "qwen2.5-14b": "qwen2.5-7b", "gemma3-27b": "gemma3-1b",
}  # fmt: skip


# zoo models whose own config.json a family test validates in full (with its prefix and state by hand)
VALIDATED_FROM_ITS_CONFIG = {
    "qwen3-next-80b-a3b": (
        "qwen3-next-80b-a3b-instruct.json",
        "tests/test_family_recurrent_a.py::test_hybrids_validate",
    ),
    "nemotron-h-56b": ("nemotron-h-56b-base-8k.json", "tests/test_family_hybrid.py::test_real_hybrids_validate"),
}


def test_each_zoo_model_validated_elsewhere_is_that_config() -> None:
    """The model the family test validates is the zoo model: every field but the provenance (names, sources,
    published counts) read from the same config.json."""
    provenance = {"name", "display_name", "source", "pretraining_tokens", "pretraining_tokens_source",
                  "reported_params", "reported_params_source", "reported_active_params"}  # fmt: skip
    for name, (file, _) in VALIDATED_FROM_ITS_CONFIG.items():
        zoo, real = vars(load_spec(name)), vars(spec_from_hf_config(ROOT / "tests/data/hf_configs/extra" / file))
        assert {k: v for k, v in zoo.items() if k not in provenance} == {
            k: v for k, v in real.items() if k not in provenance
        }, name


def test_each_zoo_model_left_out_has_one_of_its_structure_measured() -> None:
    specs = {s.name: s for s in load_all_specs()}
    for left, kept in SAME_STRUCTURE_AS.items():
        a, b = specs[left], specs[kept]
        assert kept not in SAME_STRUCTURE_AS and a.model_type == b.model_type, left
        assert a.tie_word_embeddings == b.tie_word_embeddings and (a.sliding_window is None or b.sliding_window), left


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    "spec",
    [s for s in load_all_specs() if s.name not in SAME_STRUCTURE_AS and s.name not in VALIDATED_FROM_ITS_CONFIG],
    ids=lambda s: s.name,
)
def test_every_zoo_model_measures_exactly(checks_module, spec: ModelSpec) -> None:  # type: ignore[no-untyped-def]
    transformers = pytest.importorskip("transformers")
    result = checks_module.validate(Query(spec, rank=16, targets="all-linear"))
    by_name = {c.quantity: c for c in result.checks}
    differs = [c for c in result.checks if c.status == "differs"]
    assert not differs, differs

    def ok(prefix: str) -> bool:
        return any(q.startswith(prefix) and c.status == "ok" for q, c in by_name.items())

    assert by_name["parameters (meta device)"].status == "ok"
    per_token = next(c for q, c in by_name.items() if q.startswith("KV cache bytes per token"))
    assert per_token.measured == kv_bytes_per_token(spec, DType.bf16)  # MLA: transformers holds the latent
    for prefix in ("LoRA r=16 all-linear", "IA3 parameters", "prompt tuning", "LoReFT r=8"):
        if prefix == "prompt tuning" and not spec.num_attention_heads:  # peft's prompt learning needs heads
            assert any(note.startswith("prompt: peft refuses") for note in result.method)
            continue
        assert ok(prefix), prefix
    saved = next(c for q, c in by_name.items() if q.startswith("saved LoRA tensors"))
    if fp32_weights(spec, transformers.__version__):  # transformers >= 5.24 keeps the router in float32
        assert saved.status == "explained"
        assert saved.measured == saved.estimate + router_fp32_extra_bytes(spec)
    else:
        assert saved.status == "ok"
    assert ok("DoRA r=16") or spec.is_moe  # peft has no DoRA for fused expert tensors
    no_cache_of_their_own = any(not g.mixer.vectors(KVFormat()) for g in layout_of(spec).groups)  # peft sizes all L
    assert ok("prefix tuning") or spec.is_mla or spec.model_type == "falcon" or no_cache_of_their_own
    if spec.is_moe:
        assert ok("LoRA r=16 on one per-expert MoE block")
    windows = {w for w in spec.layer_windows() if w is not None}
    for window in windows:  # measured beyond the window: transformers keeps w - 1 tokens
        assert any(f"T = {window + 8:,}" in q and c.status == "ok" for q, c in by_name.items())


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
def test_sliding_window_and_falcon_broadcast_on_real_configs(checks_module) -> None:  # type: ignore[no-untyped-def]
    mistral = spec_from_hf_config(CONFIGS / "mistral-7b-v0.1.json")
    result = checks_module.validate(Query(mistral, rank=8))
    assert result.ok
    beyond = [c for c in result.checks if "T = 4,104" in c.quantity]
    assert beyond and beyond[0].measured == 32 * 2 * 8 * 128 * 2 * 4095  # 32 layers hold w - 1 = 4095 tokens
    falcon = spec_from_hf_config(CONFIGS / "extra" / "falcon-40b.json")
    kv = checks_module.kv_checks(falcon, DType.bf16)[0]
    assert all(c.status == "explained" and c.measured == 16 * c.estimate for c in kv)


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
def test_validate_command_prints_the_table(checks_module, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["validate", "--model", "gpt2", "--rank", "4"]) == 0
    out = capsys.readouterr().out
    assert "parameters (meta device)" in out and "124,439,808" in out and "✔" in out
    assert "How it was measured" in out and "Validated in" in out and "peak memory" in out


@pytest.mark.validation
@pytest.mark.filterwarnings("ignore")
def test_validate_states_the_versions_it_measured_with(  # type: ignore[no-untyped-def]
    checks_module, capsys: pytest.CaptureFixture[str]
) -> None:
    from importlib import metadata

    assert main(["validate", "--model", "gpt2", "--rank", "4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["versions"] == {name: metadata.version(name) for name in ("torch", "transformers", "peft")}
    assert data["ok"] and data["models"][0]["name"] == "gpt2"
    assert data["tested_versions"]["transformers"] == read_pins((ROOT / "test-lock.txt").read_text())["transformers"]
    assert main(["validate", "--model", "gpt2", "--rank", "4"]) == 0
    assert f"transformers {metadata.version('transformers')}" in capsys.readouterr().out


def test_version_report_names_what_is_outside_the_lock() -> None:
    tested = {"torch": "2.13.0", "transformers": "5.24.0", "peft": "0.21.2"}
    inside = VersionReport({"torch": "2.13.0+cpu", "transformers": "5.24.0", "peft": "0.21.2"}, tested)
    assert inside.outside == () and "the versions the test suite pins" in inside.line()
    outside = VersionReport({"torch": "2.13.0", "transformers": "5.25.0", "peft": None}, tested)
    assert outside.outside == ("transformers", "peft")
    line = outside.line()
    assert (
        line.count("\n") == 0
        and "outside the versions the tests were run with (transformers 5.24.0, peft 0.21.2)" in line
    )


def test_the_lock_pins_every_package_the_extras_need_and_the_readme_uses_it() -> None:
    pins = read_pins((ROOT / "test-lock.txt").read_text())
    for name in ("torch", "transformers", "peft", "safetensors", "numpy", "pandas", "matplotlib", "pydantic"):
        assert name in pins, name
    assert pins["torch"] == "2.13.0"
    assert 'pip install -c test-lock.txt -e ".[test,validate,web]"' in (ROOT / "README.md").read_text()


def test_fp32_weights_follow_the_transformers_release() -> None:
    deepseek = load_spec("deepseek-v3")
    assert fp32_weights(deepseek, "5.24.0") == ("mlp.gate",) and fp32_weights(deepseek, "5.23.0") == ()
    assert fp32_weights(load_spec("llama3-70b"), "5.24.0") == ()

"""The zoo: every file validates, and every architecture value is the real config.json's."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from estimator.architecture import linear_maps
from estimator.errors import EstimatorError
from estimator.hf_config import spec_from_hf_config
from estimator.specs import ModelSpec, validate_spec
from estimator.zoo import load_spec, load_spec_file, model_names, specs_dir

from .conftest import CONFIGS, EXTRA_CONFIGS, ZOO_CONFIGS

REQUIRED_ZOO = {
    "llama2-7b",
    "llama2-13b",
    "llama2-70b",
    "llama3-8b",
    "llama3-70b",
    "llama3.1-8b",
    "llama3.1-70b",
    "llama3.1-405b",
    "mistral-7b-v0.3",
    "qwen2.5-7b",
    "qwen2.5-14b",
    "phi3-mini",
    "falcon-7b",
    "gpt2",
}
PROVENANCE = {
    "name",
    "display_name",
    "source",
    "pretraining_tokens",
    "pretraining_tokens_source",
    "reported_params",
    "reported_params_source",
    "reported_active_params",
    "reported_active_params_exclude_input_embedding",
    "notes",
}


def test_zoo_holds_the_required_models() -> None:
    assert set(model_names()) >= REQUIRED_ZOO


def test_every_zoo_model_has_its_real_config() -> None:
    assert {p.stem for p in ZOO_CONFIGS} == set(model_names())


@pytest.mark.parametrize("config", ZOO_CONFIGS, ids=lambda p: p.stem)
def test_zoo_file_equals_what_its_real_config_json_says(config: Path) -> None:
    """The TOML was not typed by hand: its architecture is exactly the reader's view of the config."""
    zoo = load_spec(config.stem)
    read = spec_from_hf_config(config, name=config.stem)
    zoo_arch = zoo.to_dict(exclude=PROVENANCE)
    read_arch = read.to_dict(exclude=PROVENANCE)
    assert zoo_arch == read_arch
    assert zoo.source.startswith("https://huggingface.co/") and zoo.source.endswith("/config.json")


@pytest.mark.parametrize("name", sorted(REQUIRED_ZOO))
def test_zoo_provenance(name: str) -> None:
    spec = load_spec(name)
    if spec.pretraining_tokens is None:
        assert any("pretraining token count" in note for note in spec.notes), "say why the count is missing"
    else:
        assert spec.pretraining_tokens_source and spec.pretraining_tokens_source.startswith("https://")


def test_lookup_is_exact_and_case_insensitive() -> None:
    assert load_spec("LLAMA3-70B").name == "llama3-70b"
    with pytest.raises(EstimatorError) as info:
        load_spec("llama3-7b")
    message = str(info.value)
    assert "did you mean" in message and "llama3-70b" in message and "llama3-8b" in message
    with pytest.raises(EstimatorError, match="estimate models"):
        load_spec("no-such-model")


def test_model_names_sort_naturally() -> None:
    names = model_names()
    assert names.index("llama2-7b") < names.index("llama2-13b") < names.index("llama2-70b")


def _write_spec(tmp_path: Path, name: str, **changes: object) -> Path:
    text = (specs_dir() / "llama3-8b.toml").read_text()
    lines = [line for line in text.splitlines() if not any(line.startswith(f"{k} ") for k in changes)]
    lines += [f"{k} = {json.dumps(v)}" for k, v in changes.items()]
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines).replace('name = "llama3-8b"', f'name = "{name}"') + "\n")
    return path


def test_bad_spec_file_names_file_and_field(tmp_path: Path) -> None:
    path = _write_spec(tmp_path, "broken", num_key_value_heads="eight")
    with pytest.raises(EstimatorError) as info:
        load_spec_file(path)
    message = str(info.value)
    assert str(path) in message and "num_key_value_heads" in message and "\n" not in message


def test_spec_rejects_unknown_fields_and_inconsistent_heads(tmp_path: Path) -> None:
    with pytest.raises(EstimatorError, match="kv_heads"):
        load_spec_file(_write_spec(tmp_path, "extra-field", kv_heads=8))
    with pytest.raises(EstimatorError, match="multiple of"):
        load_spec_file(_write_spec(tmp_path, "bad-heads", num_key_value_heads=5))
    with pytest.raises(EstimatorError, match="only apply to model_type 'falcon'"):
        load_spec_file(_write_spec(tmp_path, "bad-flag", bias=True))
    with pytest.raises(EstimatorError, match="differs from the file name"):
        load_spec_file(_write_spec(tmp_path, "renamed").rename(tmp_path / "other.toml"))


def test_spec_is_frozen(llama3_70b: ModelSpec) -> None:
    with pytest.raises(FrozenInstanceError):
        llama3_70b.hidden_size = 1  # type: ignore[misc]


def test_head_dim_is_explicit_not_derived() -> None:
    """Mistral NeMo: head_dim 128, while hidden_size / heads = 160."""
    spec = spec_from_hf_config(CONFIGS / "extra" / "mistral-nemo-base-2407.json")
    assert spec.head_dim == 128 and spec.hidden_size // spec.num_attention_heads == 160


def test_falcon_multi_query_overrides_num_kv_heads(tmp_path: Path) -> None:
    """FalconConfig.to_dict() writes num_kv_heads = 71; FalconAttention still uses one KV head."""
    config = json.loads((CONFIGS / "falcon-7b.json").read_text())
    config["num_kv_heads"] = 71
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    spec = spec_from_hf_config(path)
    assert spec.num_key_value_heads == 1
    assert any("multi_query" in note for note in spec.notes)
    forty = spec_from_hf_config(CONFIGS / "extra" / "falcon-40b.json")
    assert forty.num_key_value_heads == 8 and forty.new_decoder_architecture


def test_mistral_sliding_window_defaults(tmp_path: Path) -> None:
    v01 = spec_from_hf_config(CONFIGS / "mistral-7b-v0.1.json")
    assert v01.layer_windows() == (4096,) * 32
    v03 = load_spec("mistral-7b-v0.3")
    assert v03.layer_windows() == (None,) * 32
    config = json.loads((CONFIGS / "mistral-7b-v0.3.json").read_text())
    del config["sliding_window"]  # absent, not null: MistralConfig's default 4096 applies
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert spec_from_hf_config(path).sliding_window == 4096


def test_qwen2_sliding_window_needs_use_sliding_window(tmp_path: Path) -> None:
    spec = load_spec("qwen2.5-7b")  # config says sliding_window 131072 but use_sliding_window false
    assert spec.sliding_window is None
    config = json.loads((CONFIGS / "qwen2.5-7b.json").read_text())
    config.update(use_sliding_window=True, sliding_window=4096, max_window_layers=20)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    windows = spec_from_hf_config(path).layer_windows()
    assert windows == (None,) * 20 + (4096,) * 8


def test_gpt2_names_and_defaults() -> None:
    spec = load_spec("gpt2")
    assert (spec.hidden_size, spec.num_hidden_layers, spec.num_attention_heads) == (768, 12, 12)
    assert spec.intermediate_size == 4 * 768 and spec.tie_word_embeddings
    assert spec.max_position_embeddings == 1024


@pytest.mark.parametrize("config", EXTRA_CONFIGS, ids=lambda p: p.stem)
def test_config_reads_real_configs_beyond_the_zoo(config: Path) -> None:
    spec = spec_from_hf_config(config)
    assert spec.source.startswith("file://")
    assert linear_maps(spec)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not an object"),
        ('{"model_type": "llama", "hidden_size": 64}', "lacks 'num_attention_heads'"),
        ('{"hidden_size": 64}', "lacks 'model_type'"),
        ('{"model_type": "bert"}', "'bert' is not a family the estimator knows"),
        (
            '{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2,'
            ' "vocab_size": 10, "intermediate_size": -1}',
            "intermediate_size",
        ),
    ],
)
def test_bad_config_json(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(EstimatorError, match=message) as info:
        spec_from_hf_config(path)
    assert "\n" not in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(EstimatorError, match="not found"):
        spec_from_hf_config(tmp_path / "nope.json")


def test_validated_manifest_is_current_and_equivalent() -> None:
    """Zoo files load without re-validation only while their text is the one validated; same result."""
    import tomllib

    from estimator.zoo import VALIDATED_MANIFEST

    manifest = json.loads((specs_dir() / VALIDATED_MANIFEST).read_text())
    assert set(manifest) == {p.name for p in specs_dir().glob("*.toml")}
    for path in sorted(specs_dir().glob("*.toml")):
        record = manifest[path.name]
        assert record["text"] == path.read_text(), f"{path.name} changed: run python -m estimator.zoo_manifest"
        fast = load_spec_file(path)
        full = validate_spec(tomllib.loads(path.read_text()), str(path), "fix")
        assert fast.to_dict() == full.to_dict()
        assert fast == full and linear_maps(fast) == linear_maps(full)


def test_edited_zoo_file_is_validated_again(tmp_path: Path) -> None:
    from estimator.zoo import VALIDATED_MANIFEST

    source = specs_dir() / "llama3-8b.toml"
    (tmp_path / VALIDATED_MANIFEST).write_text((specs_dir() / VALIDATED_MANIFEST).read_text())
    edited = tmp_path / "llama3-8b.toml"
    edited.write_text(source.read_text().replace("num_key_value_heads = 8", 'num_key_value_heads = "eight"'))
    with pytest.raises(EstimatorError, match="num_key_value_heads"):
        load_spec_file(edited)
    unchanged = tmp_path / "llama3-70b.toml"
    unchanged.write_text((specs_dir() / "llama3-70b.toml").read_text())
    assert load_spec_file(unchanged).num_key_value_heads == 8

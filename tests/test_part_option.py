"""The whole model of a multimodal checkpoint (``--part all``): its language model plus the parts outside it,
counted by :func:`estimator.families.towers.whole_model_params` and checked against transformers' own
wrapper built on the meta device from a real config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from estimator.architecture import total_params
from estimator.errors import EstimatorError
from estimator.families.towers import whole_model_params
from estimator.hf_config import read_config_json, spec_from_hf_config

CONFIGS = Path(__file__).parent / "data" / "hf_configs"


@pytest.mark.validation
def test_gemma3_whole_model_is_transformers_wrapper(tmp_path: Path) -> None:
    """gemma3-27b.json with its text model cut to 2 layers (the vision tower, 27 SigLIP layers, kept whole):
    the language model by its family plus the tower and projector by towers.py equal the parameters of
    transformers' Gemma3ForConditionalGeneration built from the same config (tied head once)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = json.loads((CONFIGS / "gemma3-27b.json").read_text())
    config["text_config"] = {**config["text_config"], "num_hidden_layers": 2}
    config["text_config"].pop("layer_types", None)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    language = total_params(spec_from_hf_config(path))
    whole, how = whole_model_params(read_config_json(path), path, language)
    fields = {k: v for k, v in config.items() if k not in ("architectures", "transformers_version")}
    with torch.device("meta"):
        model = transformers.Gemma3ForConditionalGeneration(transformers.AutoConfig.for_model(**fields))
    assert whole == sum(p.numel() for p in model.parameters())
    assert whole - language == 416_866_032 + 6_194_304  # the tower and projector of the 27B, per towers.py
    assert how.startswith(f"language model {language:,} + vision tower (SigLIP) 416,866,032")


def test_a_text_only_model_is_its_language_model() -> None:
    path = CONFIGS / "gemma3-1b.json"
    language = total_params(spec_from_hf_config(path))
    assert whole_model_params(read_config_json(path), path, language) == (language, "whole model = language model")


LLAVA = {
    "model_type": "llava", "architectures": ["LlavaForConditionalGeneration"], "image_token_index": 999,
    "text_config": {"model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000},
    "vision_config": {"model_type": "clip_vision_model", "hidden_size": 64, "intermediate_size": 128,
                      "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
}  # fmt: skip
# CLIP tower, d = 64, I = 128, P = 8 over 32 px: patches 3 · 8² · 64 (no bias), class 64, (16 + 1) · 64 positions,
# pre and post LayerNorms 2 · 2 · 64; per layer q, k, v, o with biases, fc1, fc2 with biases, two LayerNorms.
CLIP_TOWER = (
    3 * 8 * 8 * 64 + 64 + 17 * 64 + 2 * 2 * 64 + 2 * (4 * (64 * 64 + 64) + (64 * 128 + 128) + (128 * 64 + 64) + 4 * 64)
)
PROJECTOR = (64 * 256 + 256) + (256 * 256 + 256)  # linear_1 (vision -> text), linear_2, with biases


@pytest.mark.validation
def test_a_wrapper_no_formula_knows_is_measured_on_the_meta_device(tmp_path: Path) -> None:
    """Llava: the Llama language model by its family (1,692,928) plus what transformers' wrapper adds, checked by
    hand: the CLIP tower (80,640) and the projector (82,432)."""
    pytest.importorskip("transformers")
    from estimator.validate.unknown import whole_model_params_measured

    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAVA))
    language = total_params(spec_from_hf_config(path))
    assert language == 2 * 1000 * 256 + 2 * (2 * 256 * 256 + 2 * 256 * 128 + 3 * 256 * 512 + 2 * 256) + 256
    whole, built = whole_model_params_measured(LLAVA)
    assert (whole - language, built) == (CLIP_TOWER + PROJECTOR, "LlavaForConditionalGeneration")
    assert CLIP_TOWER + PROJECTOR == 80_640 + 82_432


@pytest.mark.validation
def test_a_wrapper_transformers_cannot_build_is_refused_in_one_line() -> None:
    pytest.importorskip("transformers")
    from estimator.validate.unknown import whole_model_params_measured

    config = {**LLAVA, "architectures": [], "model_type": "llava", "vision_config": {"model_type": "no_such_tower"}}
    with pytest.raises(EstimatorError) as error:
        whole_model_params_measured(config)
    line = str(error.value)
    assert "\n" not in line and "cannot build the whole llava model" in line and line.endswith("use --part language")


def test_the_first_line_says_which_part_and_full_fine_tuning_counts_it(capsys: pytest.CaptureFixture[str]) -> None:
    """gemma3-27b.json: the language model's 27,009,346,304 by default; with --part all the whole model's
    27,009,346,304 + 416,866,032 + 6,194,304 = 27,432,406,640 in the first line and the full fine-tuning row
    (bf16: 54,864,813,280 bytes), while the KV cache and the LoRA stay the language model's."""
    from .test_cli import run

    path = str(CONFIGS / "gemma3-27b.json")
    code, out, _ = run(capsys, "--config", path, "--methods", "kv,lora,full")
    first = out.splitlines()[0]
    assert code == 0 and "27,009,346,304 parameters" in first
    assert first.endswith("language model of a multimodal checkpoint; --part all for the whole model")
    code, whole_out, _ = run(capsys, "--config", path, "--methods", "kv,lora,full", "--part", "all")
    first = whole_out.splitlines()[0]
    assert code == 0 and "27,432,406,640 parameters" in first
    assert (
        "whole model (language model 27,009,346,304 + vision tower (SigLIP) 416,866,032 + projector 6,194,304)" in first
    )
    assert "the KV cache and adapters are the language model's" in first
    assert "54,864,813,280" in whole_out and "54,864,813,280" not in out  # 2 bytes × 27,432,406,640
    rows = [line for line in out.splitlines() if line.startswith(("in context", "LoRA"))]
    assert rows and all(row in whole_out for row in rows)  # the cache and adapter rows are unchanged


def test_json_names_the_part(capsys: pytest.CaptureFixture[str]) -> None:
    from .test_cli import run

    path = str(CONFIGS / "gemma3-27b.json")
    code, out, _ = run(capsys, "--config", path, "--methods", "full", "--part", "all", "--json")
    model = json.loads(out)["model"]
    assert code == 0 and model["part"] == "all" and model["params"] == 27_432_406_640
    # text_config: d 5,376, 32 heads and 16 KV heads of 128, F 21,504, 62 layers, vocabulary 262,208 (the class's
    # default), tied head; 4 norms a layer and q_norm, k_norm of 128; the projector 1,152 -> 5,376 and its norm
    d, layers = 5376, 62
    assert model["params_breakdown"] == {
        "embedding": 262_208 * d,
        "attention": layers * (2 * d * 32 * 128 + 2 * d * 16 * 128),
        "recurrent": 0,
        "mlp": layers * 3 * d * 21504,
        "experts": 0,
        "norm": layers * (4 * d + 2 * 128) + d,
        "lm_head": 0,
        "vision tower (SigLIP)": 416_866_032,
        "projector": 1152 * d + 1152,
    }
    code, out, _ = run(capsys, "--model", "llama3-8b", "--methods", "full", "--part", "all", "--json")
    model = json.loads(out)["model"]
    assert model["params"] == 8_030_261_248 and model["part_counted"] == "whole model = language model"


def test_a_text_model_with_part_all_is_the_same_numbers() -> None:
    from estimator.compare import estimate

    language, whole = estimate("llama3-8b", methods="kv,full"), estimate("llama3-8b", methods="kv,full", part="all")
    assert [(r.method, r.params, r.bytes) for r in language.rows] == [(r.method, r.params, r.bytes) for r in whole.rows]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "gemma3-27b", "--part", "all"], "for --part all pass --config with the checkpoint's config.json"),
        (["--model", "llama3-8b", "--part", "vision"], "unknown --part 'vision'; use one of: language, all"),
    ],
)
def test_refusals_are_one_line(capsys: pytest.CaptureFixture[str], args: list[str], needle: str) -> None:
    from .test_cli import run

    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err, err

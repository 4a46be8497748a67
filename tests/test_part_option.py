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


def test_a_wrapper_whose_parts_are_not_modelled_is_refused_in_one_line(tmp_path: Path) -> None:
    config = {"model_type": "llava", "text_config": {"model_type": "llama"}, "vision_config": {"model_type": "clip"}}
    with pytest.raises(EstimatorError) as error:
        whole_model_params(config, tmp_path / "config.json", 1000)
    line = str(error.value)
    assert "\n" not in line and "(text_config, vision_config) are not counted here; use --part language" in line

"""transformers and peft as the oracle: real configs, real modules on the meta device, exact counts.

Skipped where torch is not installed (install the `validate` extra; CI does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from estimator.architecture import total_params
from estimator.errors import EstimatorError
from estimator.hf_config import ALIASES, TEXT_MODEL_TYPES, spec_from_hf_config
from estimator.layout import ExpertLayout
from estimator.stores.kinds import peft_target_modules
from estimator.stores.targets import lora_params, resolve_targets

from .conftest import EXTRA_CONFIGS, ZOO_CONFIGS

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

pytestmark = [pytest.mark.validation, pytest.mark.filterwarnings("ignore")]


def meta_model(config_path: Path) -> Any:
    """The real transformers model of a config.json, built on the meta device (no memory, no weights).

    A multimodal config (Gemma 3) is built for its language model, from its text_config.
    """
    config = json.loads(config_path.read_text())
    if config.get("model_type") in TEXT_MODEL_TYPES:  # a multimodal wrapper: its language model
        config = {"model_type": TEXT_MODEL_TYPES[config["model_type"]], **config["text_config"]}
    model_type = ALIASES.get(config["model_type"], config["model_type"])
    config.pop("model_type")
    hf_config = transformers.AutoConfig.for_model(model_type, **config)
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(hf_config)


@pytest.mark.parametrize("config_path", ZOO_CONFIGS + EXTRA_CONFIGS, ids=lambda p: p.stem)
def test_params_and_lora_equal_transformers_and_peft(config_path: Path) -> None:
    spec = spec_from_hf_config(config_path)
    model = meta_model(config_path)
    assert sum(p.numel() for p in model.parameters()) == total_params(spec)
    # peft on transformers >= 5 adapts mixture-of-experts tensors as the "fused" convention says.
    experts = ExpertLayout.fused if spec.is_moe else ExpertLayout.per_expert
    for preset in ("all-linear", "attention"):
        try:
            targets = resolve_targets(spec, preset, experts)
        except EstimatorError:  # a model with no attention maps (a pure SSM)
            assert preset == "attention"
            continue
        target_modules: Any = peft_target_modules(targets, spec)  # peft's own "all-linear" where it allows it
        for rank in (8, 64):
            with torch.device("meta"):  # adapter weights on the meta device too: no memory, no init time
                lora = peft.get_peft_model(model, peft.LoraConfig(r=rank, target_modules=target_modules))
            measured = sum(p.numel() for p in lora.parameters() if p.requires_grad)
            assert measured == lora_params(targets, rank), (preset, rank)
            model = lora.unload()

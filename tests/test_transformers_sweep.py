"""The whole causal-LM mapping of the pinned transformers against the tool, type by type.

tests/data/transformers_sweep/transformers-<version>.json holds, for every model_type in transformers'
MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, a small config (the config class's defaults shrunk with their structure kept)
and what transformers and peft measured on it with real tensors in bfloat16: ``parameters()``, peft's LoRA r=8 on
all-linear, and the bytes of every tensor in the cache after a forward over 5 and over 37 tokens (windows of 16).
``tools/transformers_sweep.py`` regenerates it. Here the tool answers each decoder's config as a user's
config.json (an analytic family where one knows the model_type, measured from transformers otherwise) and must
give the same numbers exactly, or refuse it in one line (REFUSED). A transformers release that adds, removes or
renames a type fails the first test until the data is regenerated and every new type handled.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

pytestmark = [pytest.mark.validation, pytest.mark.filterwarnings("ignore")]

ROOT = Path(__file__).resolve().parent.parent


def tool() -> Any:
    spec = importlib.util.spec_from_file_location("transformers_sweep", ROOT / "tools" / "transformers_sweep.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["transformers_sweep"] = module
    spec.loader.exec_module(module)
    return module


SWEEP = tool()
DATA_FILE = SWEEP.DATA / f"transformers-{transformers.__version__}.json"
DATA: dict[str, Any] = json.loads(DATA_FILE.read_text()) if DATA_FILE.exists() else {"types": {}}
DECODERS = sorted(t for t, r in DATA["types"].items() if r.get("class") == "decoder")

# Types the tool refuses, each with (a part of) its one-line reason.
REFUSED: dict[str, str] = {}

# Types whose small config transformers 5.24 itself could not build: no truth to compare with.
NOT_MEASURED = {
    "gemma3n": "its causal LM is the multimodal model, whose vision tower (TimmWrapperModel) needs timm",
    "gemma4_assistant": "its config class's own defaults fail its validation (hidden_size_per_layer_input)",
    "gemma4_unified_assistant": "transformers refuses its KV sharing: the layer types producing a cache differ "
    "from those using it",
}

# Types whose parameters and LoRA are measured but whose cache transformers' forward did not return.
CACHE_NOT_MEASURED = {
    "blt": "its cache is built from config.num_hidden_layers, which BltConfig lacks (AttributeError)",
    "openai-gpt": "GPT-1 keeps no cache: its output has no past_key_values",
    "recurrent_gemma": "its recurrent and attention state lives in the layers' modules, not in a returned cache",
}

# Types whose cache the measured path refuses in one line (the parameters and LoRA are still exact).
CACHE_REFUSED = {  # the measured path's reason, as it said it on 2026-12-07 (its wording is not asserted)
    "reformer": "fake tensors cannot run it, nor its shrunk copy (mixed dtypes)",
}

# Multimodal wrappers whose causal LM in transformers is the whole model (a ...ForConditionalGeneration): the
# tool's parameters are its --part all count (towers and projector included) and must be exact; its adapters are
# the language model's, as its rows say, while peft's all-linear on the whole model also adapts the towers' maps.
LORA_OF_THE_LANGUAGE_MODEL = {
    "gemma3": "LoRA -27.5%: the SigLIP tower's and projector's maps are not adapted",
    "got_ocr2": "LoRA -41.5%: the vision encoder's maps are not adapted",
    "moss_transcribe_diarize": "LoRA -53.2%: the audio encoder's maps are not adapted",
}

# Types whose measured path crashes the process that runs it: the CLI measures in a child process and says so in
# one line ("crashed its child process (killed by signal SIGSEGV); nothing is measured for it",
# tests/test_measured_path.py); here, in a forked child, the crash is the verdict.
CRASHES = {"dory": "its forward under FakeTensorMode kills the process (SIGSEGV)"}


def test_the_data_is_of_the_installed_transformers_and_its_whole_mapping() -> None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    fix = f"run `nice -n 10 python tools/transformers_sweep.py` to measure transformers {transformers.__version__}"
    assert DATA_FILE.exists(), f"no sweep data for transformers {transformers.__version__}; {fix}"
    assert DATA["versions"]["transformers"] == transformers.__version__, fix
    installed, stored = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES), set(DATA["types"])
    assert installed == stored, f"added: {sorted(installed - stored)}, removed: {sorted(stored - installed)}; {fix}"
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    for model_type, record in DATA["types"].items():
        assert record["config_class"] == CONFIG_MAPPING_NAMES[model_type], f"{model_type}'s config class changed; {fix}"
    if transformers.__version__ == "5.24.0":  # 196 types less 18 encoders and 14 decoder halves, counted apart
        assert len(DECODERS) == 164


def test_the_classification_is_the_scripts_rule() -> None:
    for model_type, record in DATA["types"].items():
        assert record["class"] == SWEEP.classify(model_type)[0], model_type


def test_every_decoder_is_measured_or_listed_as_not_measured() -> None:
    assert {t for t in DECODERS if "error" in DATA["types"][t]} == set(NOT_MEASURED)
    no_cache = {t for t in DECODERS if "error" not in DATA["types"][t] and len(DATA["types"][t]["cache"]) < 2}
    assert no_cache == set(CACHE_NOT_MEASURED)


@pytest.fixture(scope="module")
def verdicts() -> dict[str, tuple[str, list[str]]]:
    """How the tool answers each decoder and where it differs, each type in a forked child (a type whose measured
    path crashes the process is then one failed test), two to four at a time. The measured path is compared at T2 only
    (each token count is one FakeTensor forward, the costly part); `tools/transformers_sweep.py --check` does both."""
    found = SWEEP.verdicts(DATA_FILE, workers=min(4, max(2, os.cpu_count() or 2)), measured_tokens=(SWEEP.T2,))
    return {t: (how, wrong) for t, _, how, wrong, _ in found}


@pytest.mark.parametrize("model_type", DECODERS)
def test_the_tool_equals_transformers(model_type: str, verdicts: dict[str, tuple[str, list[str]]]) -> None:
    if model_type in NOT_MEASURED:
        assert "error" in DATA["types"][model_type]
        pytest.skip(f"not measured: {NOT_MEASURED[model_type]}")
    how, wrong = verdicts[model_type]
    if model_type in REFUSED:
        assert how.startswith("refused: ") and REFUSED[model_type] in how and "\n" not in how, how
        return
    if model_type in CRASHES:
        assert how.startswith("crashed") or wrong, f"{model_type} no longer crashes: take it out of CRASHES ({how})"
        return
    assert how.startswith(("analytic", "measured")), how
    if model_type in LORA_OF_THE_LANGUAGE_MODEL:
        assert len(wrong) == 1 and wrong[0].startswith("lora r=8 all-linear: tool "), wrong
        return
    if model_type in CACHE_REFUSED:
        assert wrong, f"{model_type}'s cache is now measured: take it out of CACHE_REFUSED"
        assert all(w.startswith("cache bytes") and "the tool refuses it (not measurable" in w for w in wrong), wrong
        return
    assert not wrong, f"{model_type} ({how}): " + "; ".join(wrong)


def test_the_shrinker_keeps_the_layer_pattern() -> None:
    sliding, full = "sliding_attention", "full_attention"
    gemma3 = {"num_hidden_layers": 62, "layer_types": ([sliding] * 5 + [full]) * 10 + [sliding] * 2}
    small = SWEEP.shrink(gemma3)
    assert small["num_hidden_layers"] == 6 and small["layer_types"] == [sliding] * 5 + [full]
    jamba = {"num_hidden_layers": 32, "attn_layer_period": 8, "attn_layer_offset": 4, "hidden_size": 4096}
    assert SWEEP.shrink(jamba) == {"num_hidden_layers": 8, "attn_layer_period": 8, "attn_layer_offset": 4,
                                   "hidden_size": 64}  # fmt: skip
    dense_first = {"num_hidden_layers": 61, "mlp_layer_types": ["dense"] * 3 + ["sparse"] * 58}
    assert SWEEP.shrink(dense_first)["mlp_layer_types"] == ["dense"] * 3 + ["sparse"]  # every kind kept
    per_layer = {"num_hidden_layers": 30, "head_dim": 256, "per_layer_config": {"05": {"head_dim": 512}}}
    small = SWEEP.shrink(per_layer)
    assert small["num_hidden_layers"] == 6 and small["per_layer_config"] == {"05": {"head_dim": 32}}  # apart from 16
    moe = {"num_hidden_layers": 2, "num_experts": 128, "num_experts_per_tok": 8, "sliding_window": 4096}
    assert SWEEP.shrink(moe) == {"num_hidden_layers": 2, "num_experts": 4, "num_experts_per_tok": 2,
                                 "sliding_window": SWEEP.WINDOW}  # fmt: skip
    assert SWEEP.T1 < SWEEP.WINDOW < SWEEP.T2

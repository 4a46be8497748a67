"""Every family's cache against transformers' on its config class's own defaults (shrunk) and a second shape.

The shapes are tests/test_config_defaults.py's: each config as transformers 5.24 writes it, read by the tool,
and the model transformers builds from it run forward over T tokens under torch's FakeTensorMode (true shapes,
no memory); the bytes of every key, value, convolution and recurrent-state tensor in the returned cache are
compared with the tool's cache in transformers' conventions (a full window holds w − 1 tokens, K convolution
columns, the family's recurrent-state dtype, MLA's latent; Falcon's new architecture broadcasts K and V to
every query head: that many times the tool's). T = 20 runs past every window of the second shapes (16).

Skipped where torch is not installed (install the `validate` extra; CI does).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from estimator.families import supported
from estimator.hf_config import spec_from_config
from estimator.kv import kv_cache_bytes
from estimator.transformers_rules import transformers_kv_heads
from estimator.units import DType

from .test_config_defaults import shrunk_fields, written_config

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
measure = pytest.importorskip("estimator.validate.measure")
checks = pytest.importorskip("estimator.validate.checks")

pytestmark = [pytest.mark.validation, pytest.mark.filterwarnings("ignore")]

TOKENS = 20
# Routing on data (an expert index read with .item()), which fake tensors cannot run: a real forward of the tiny model.
REAL_FORWARD = frozenset({"longcat_flash", "dbrx", "jetmoe", "deepseek_v4"})  # DBRX's, V4's experts: nonzero;
# JetMoE's: .tolist()


def measured_cache_bytes(config: dict[str, object], tokens: int) -> int:
    """Bytes of every tensor in the cache transformers returns after a forward pass over ``tokens`` tokens."""
    from contextlib import nullcontext

    from torch._subclasses.fake_tensor import FakeTensorMode

    real = config["model_type"] in REAL_FORWARD
    with nullcontext() if real else FakeTensorMode(allow_non_fake_inputs=True):
        model = measure.build_from_config(config, device="cpu", dtype=torch.bfloat16)
        with torch.no_grad():
            ids = torch.zeros((1, tokens), dtype=torch.long)
            cache = model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
        return sum(sum(measure.layer_cache_bytes(layer)) for layer in cache.layers) + measure.linear_cache_bytes(cache)


@pytest.mark.parametrize("second", [False, True], ids=["defaults", "second"])
@pytest.mark.parametrize("model_type", supported())
def test_cache_equals_transformers_on_its_defaults(model_type: str, second: bool) -> None:
    config = written_config(model_type, shrunk_fields(model_type, second))
    spec = spec_from_config(config, Path(f"{model_type}.json"))
    held = checks.transformers_format(spec, DType.bf16)
    broadcast = transformers_kv_heads(spec) // spec.num_key_value_heads if spec.num_key_value_heads else 1
    assert broadcast * kv_cache_bytes(spec, TOKENS, held) == measured_cache_bytes(config, TOKENS)

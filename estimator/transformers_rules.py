"""What transformers does that the architecture does not require: its conventions, in one place.

- Falcon's new decoder architecture (40B, 180B) broadcasts K and V to all H query heads before
  caching (``FalconAttention._split_heads``): transformers holds H heads where the model needs K.
- Weights kept in float32 whatever the model's dtype (``_keep_in_fp32_modules_strict``), from the
  release that began to: DeepSeek V2/V3's router from 5.24. peft creates a LoRA on such a weight in
  float32 too (even with ``autocast_adapter_dtype=False``).
- A full sliding window holds w − 1 tokens between steps (``DynamicSlidingWindowLayer``): the
  ``--window-cache w-1`` convention of :class:`~estimator.layout.WindowCache`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from estimator.units import DType

if TYPE_CHECKING:
    from estimator.specs import ModelSpec

# model_type: (linear maps as the layout names them, first (major, minor) release that keeps them in float32)
FP32_WEIGHTS: dict[str, tuple[tuple[str, ...], tuple[int, int]]] = {
    "deepseek_v2": (("mlp.gate",), (5, 24)),  # DeepseekV2Moe's router: MoEGate.weight, dtype=torch.float32
    "deepseek_v3": (("mlp.gate",), (5, 24)),  # DeepseekV3TopkRouter.weight, dtype=torch.float32
    "glm4_moe": (("mlp.gate",), (5, 24)),  # Glm4MoeTopkRouter.weight, dtype=torch.float32
    "deepseek_v32": (("mlp.gate",), (5, 24)),  # DeepseekV32TopkRouter.weight, dtype=torch.float32
    "mimo_v2_flash": (("mlp.gate",), (5, 24)),  # MiMoV2FlashTopkRouter.weight, dtype=torch.float32
    "kimi_linear": (("mlp.gate",), (5, 24)),  # KimiLinearTopkRouter.weight, dtype=torch.float32
    "ernie4_5_moe": (("mlp.gate",), (5, 24)),  # Ernie4_5_MoeTopKRouter.weight, dtype=torch.float32 (seen on 5.24)
    "hunyuan_v1_moe": (("mlp.gate.wg",), (5, 24)),  # HunYuanMoEV1Gate.wg: nn.Linear(dtype=torch.float32) (5.24)
    "exaone_moe": (("mlp.gate",), (5, 24)),  # ExaoneMoeTopkRouter.weight, dtype=torch.float32 (seen on 5.24)
}


# model_type: the dtype transformers keeps a recurrent state in (None: the model's, as the activations).
STATE_DTYPES: dict[str, DType] = {
    **dict.fromkeys(("qwen3_next", "mamba", "mamba2"), DType.fp32),  # the scans run and return float32
    "falcon_mamba": DType.fp32,  # Mamba's scan, with norms on B, C and the time step
    **dict.fromkeys(("qwen3_5_text", "qwen3_5_moe_text"), DType.fp32),  # Qwen3-Next's gated DeltaNet
    "kimi_linear": DType.fp32,  # Kimi delta attention's torch scan returns its state in float32
    # Mamba-1 (Jamba) and Mamba-2 hybrids: their torch scans return the last state in float32, which the cache keeps
    **dict.fromkeys(("jamba", "bamba", "granitemoehybrid", "nemotron_h", "falcon_h1", "zamba2"), DType.fp32),
}


def transformers_state_dtype(spec: ModelSpec) -> DType | None:
    """The dtype transformers 5 keeps ``spec``'s recurrent state in: float32 for families whose code casts
    it so (gated DeltaNet), None where it follows the model's dtype."""
    return STATE_DTYPES.get(spec.model_type)


def transformers_kv_heads(spec: ModelSpec) -> int:
    """KV heads per token that transformers' own cache holds (the architecture needs K).

    Falcon-40B: 128, where the model has 8 KV heads; every other supported family: K.
    """
    if spec.model_type == "falcon" and spec.new_decoder_architecture:
        return spec.attention_heads
    return spec.num_key_value_heads or 0


def release(version: str) -> tuple[int, int]:
    """(major, minor) of a version string such as ``5.24.0`` or ``2.13.0+cpu``; (0, 0) if unreadable."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def fp32_weights(spec: ModelSpec, transformers_version: str) -> tuple[str, ...]:
    """Linear maps whose weights this transformers release keeps in float32 for ``spec``'s family.

    DeepSeek-V3 on transformers 5.24.0: ("mlp.gate",), its router; on 5.23.0: () (all in the model's dtype).
    """
    names, since = FP32_WEIGHTS.get(spec.model_type, ((), (0, 0)))
    return names if names and release(transformers_version) >= since else ()

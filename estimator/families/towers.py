"""What a multimodal wrapper holds outside its language model: the vision tower and the projector.

The families count the language model of a wrapper (its ``text_config``); these functions count the rest
as transformers 5.24 builds it (``AutoModelForImageTextToText``), so that the whole model can be stated:

- Gemma 3 (``gemma3``): a SigLIP vision tower of d_v wide, L_v layers, MLP I_v, patches P over images of S
  pixels, C channels: the patch convolution C · P² · d_v + d_v, (S / P)² position embeddings of d_v; per
  layer two LayerNorms (2 · 2 d_v), q, k, v, out (4 · (d_v² + d_v)), fc1 (d_v · I_v + I_v) and fc2
  (I_v · d_v + d_v); the post LayerNorm (2 d_v); with ``vision_use_head`` an attention-pooling head (probe
  d_v, in_proj 3 d_v · d_v + 3 d_v, out_proj d_v² + d_v, LayerNorm 2 d_v, fc1 and fc2). The projector:
  ``mm_input_projection_weight`` d_v × d and ``mm_soft_emb_norm`` (d_v).
- Llama 4 (``llama4``): a vision encoder of d_v wide: the class embedding (d_v), (S / P)² + 1 position
  embeddings, the patch projection C · P² · d_v (no bias), LayerNorms before and after (2 · 2 d_v); per layer
  q, k, v, o with biases, fc1 and fc2 with biases, two LayerNorms; the pixel-shuffle adapter fc1
  (I_v -> projector_input_dim) and fc2 (projector_output_dim -> projector_output_dim), no biases; the
  projector ``linear_1`` (vision_output_dim -> d; no bias, whatever ``multi_modal_projector_bias`` says).

Gemma 3 27B (d_v 1,152, 27 layers, I_v 4,304, P 14, S 896, no head): 416,866,032 in the tower, 6,194,304
in the projector (1,152 · 5,376 + 1,152).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from estimator.errors import EstimatorError

# SiglipVisionConfig's and Llama4VisionConfig's defaults in transformers 5.24, for keys a config omits.
_SIGLIP = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_channels": 3,
           "image_size": 224, "patch_size": 16, "vision_use_head": True}  # fmt: skip
_LLAMA4 = {"hidden_size": 768, "intermediate_size": 5632, "num_hidden_layers": 34, "num_channels": 3,
           "image_size": 448, "patch_size": 14, "projector_input_dim": 4096, "projector_output_dim": 4096,
           "vision_output_dim": 7680}  # fmt: skip


def _fields(config: dict[str, Any], defaults: dict[str, Any], path: Path) -> dict[str, Any]:
    """The vision config's values (its own, else the class default), each a whole number or a flag."""
    vision = config.get("vision_config") or {}
    values = {key: vision.get(key, default) for key, default in defaults.items()}
    for key, value in values.items():
        ok = isinstance(value, bool) if isinstance(defaults[key], bool) else type(value) is int and value > 0
        if not ok:
            raise EstimatorError(f"{path}: vision_config.{key} is {str(value)[:20]}; fix the config.json")
    return values


def _encoder_layer(d: int, inner: int) -> int:
    """One ViT layer: q, k, v, o with biases, fc1 and fc2 with biases, two LayerNorms (weight and bias)."""
    return 4 * (d * d + d) + (d * inner + inner) + (inner * d + d) + 2 * 2 * d


def gemma3_parts(config: dict[str, Any], path: Path) -> dict[str, int]:
    """Gemma 3's SigLIP tower and projector (see the module docstring)."""
    v = _fields(config, _SIGLIP, path)
    d, inner, patch = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    embeddings = v["num_channels"] * patch * patch * d + d + (v["image_size"] // patch) ** 2 * d
    head = d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * inner + inner) + (inner * d + d)
    tower = embeddings + v["num_hidden_layers"] * _encoder_layer(d, inner) + 2 * d + head * v["vision_use_head"]
    text = (config.get("text_config") or {}).get("hidden_size", 2304)  # Gemma3TextConfig's default
    return {"vision tower (SigLIP)": tower, "projector": d * text + d}


def llama4_parts(config: dict[str, Any], path: Path) -> dict[str, int]:
    """Llama 4's vision encoder with its pixel-shuffle adapter, and the projector (see the module docstring)."""
    v = _fields(config, _LLAMA4, path)
    d, inner, patch = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    embeddings = d + ((v["image_size"] // patch) ** 2 + 1) * d + v["num_channels"] * patch * patch * d
    adapter = inner * v["projector_input_dim"] + v["projector_output_dim"] ** 2
    tower = embeddings + 2 * 2 * d + v["num_hidden_layers"] * _encoder_layer(d, inner) + adapter
    text = (config.get("text_config") or {}).get("hidden_size", 5120)  # Llama4TextConfig's default
    return {"vision tower": tower, "projector": v["vision_output_dim"] * text}


PARTS: dict[str, Callable[[dict[str, Any], Path], dict[str, int]]] = {"gemma3": gemma3_parts, "llama4": llama4_parts}


def outside_language_model(config: dict[str, Any], path: Path) -> dict[str, int] | None:
    """The parameters of each part of a wrapper outside its language model; None where not modelled."""
    counted = PARTS.get(str(config.get("model_type")))
    return None if counted is None else counted(config, path)


def language_model_note(config: dict[str, Any], path: Path) -> str:
    """What a count of a wrapper's language model leaves out, in numbers where the parts are modelled."""
    wrapper = config.get("model_type")
    parts = outside_language_model(config, path)
    if parts is None:
        return f"language model only (text_config of {wrapper}): the vision tower and projector are not counted"
    listed = " and ".join(f"the {name} ({count:,} parameters)" for name, count in parts.items())
    return (
        f"language model only (text_config of {wrapper}): {listed} are not counted; "
        f"the whole model has {sum(parts.values()):,} parameters more"
    )


def whole_model_params(config: dict[str, Any], path: Path, language_params: int) -> tuple[int, str]:
    """(parameters, how counted) of a whole checkpoint (``--part all``).

    A text-only model is its language model; a wrapper whose parts :data:`PARTS` knows adds them to
    ``language_params`` (Gemma 3 27B: 27,009,346,304 + 416,866,032 + 6,194,304 = 27,432,406,640, as
    transformers 5.24 counts it); any other wrapper (one with a ``vision_config``, ``audio_config`` or a
    ``text_config`` of its own) is measured from transformers on the meta device (the class its
    ``architectures`` names), or refused in one line, never guessed."""
    parts = outside_language_model(config, path)
    if parts is not None:
        listed = " + ".join(f"{name} {count:,}" for name, count in parts.items())
        return language_params + sum(parts.values()), f"language model {language_params:,} + {listed}"
    wrapped = [key for key in ("text_config", "vision_config", "audio_config") if isinstance(config.get(key), dict)]
    if not wrapped:
        return language_params, "whole model = language model"
    whole, built = _measured_whole(config, path, wrapped)
    if whole < language_params:
        raise EstimatorError(
            f"{path}: transformers' {built} has {whole:,} parameters, fewer than its language model's "
            f"{language_params:,} counted here; use --part language"
        )
    return whole, f"{built} measured on the meta device: language model {language_params:,} + the rest"


def _measured_whole(config: dict[str, Any], path: Path, wrapped: list[str]) -> tuple[int, str]:
    """The whole checkpoint's parameters measured from transformers (in the bounded child), or one line."""
    import importlib.util

    from estimator.validate import EXTRA_PACKAGES, INSTALL_HINT

    if any(importlib.util.find_spec(name) is None for name in EXTRA_PACKAGES):
        raise EstimatorError(
            f"{path}: the parts of a {config.get('model_type')} checkpoint outside its language model "
            f"({', '.join(wrapped)}) are not counted here; install the extra to measure them ({INSTALL_HINT}) or "
            "use --part language"
        )
    from estimator.validate.child import whole_params_in_child

    return whole_params_in_child(config)


WRAPPER_NOTE = "language model only (text_config of "  # how hf_config notes a wrapper's language model


def is_wrapper_language_model(notes: tuple[str, ...]) -> bool:
    """Whether a spec (by its notes) is the language model of a multimodal checkpoint."""
    return any(note.startswith(WRAPPER_NOTE) for note in notes)

"""The weight format a checkpoint holds, from its config.json's ``quantization_config`` or a GGUF file's metadata.

Serving a quantised checkpoint holds its weights in the checkpoint's format, so ``--config`` pointing at one
sets the default ``--weights-dtype``. Read here (``quant_method`` first):

| quantization_config | format |
|---|---|
| ``mxfp4`` (gpt-oss) | ``mxfp4`` (routed experts; the rest bf16) |
| ``fp8`` with ``weight_block_size [128, 128]`` / without | ``fp8-block`` / ``fp8`` |
| ``gptq`` or ``awq``, 4 bits, groups of 128 | ``int4-gptq`` / ``int4-awq`` |
| ``modelopt`` with ``quant_algo`` NVFP4 / FP8 | ``nvfp4`` / ``fp8`` |
| ``compressed-tensors``, format ``nvfp4-pack-quantized`` / ``float-quantized`` per tensor | ``nvfp4`` / ``fp8`` |
| ``bitsandbytes`` 4-bit nf4 (double quant or not) / 8-bit | ``nf4`` / ``nf4-no-dq`` / ``int8`` |

A method or a setting this table does not hold (3-bit GPTQ, groups of 64, fp4 bitsandbytes, per-channel fp8,
NVFP4 with attention excluded) is refused in one line naming it: no format here would count its tensors.
A GGUF file's ``general.file_type`` names its llama.cpp mix; its weights are its own tensor bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from estimator.errors import EstimatorError
from estimator.memory.formats import FP8_BLOCK, GPTQ_GROUP, NVFP4_GROUP, WeightFormat

if TYPE_CHECKING:
    from collections.abc import Iterable

    from estimator.checkpoint.safetensors_files import TensorInfo

FIX = "pass --weights-dtype with the nearest format, or serve another checkpoint"
# llama.cpp's llama_ftype (general.file_type) -> format; 0 all-f32, 1 f16, 32 bf16
GGUF_FILE_TYPES = {
    0: WeightFormat.fp32,
    1: WeightFormat.fp16,
    32: WeightFormat.bf16,
    2: WeightFormat.gguf_q4_0,
    3: WeightFormat.gguf_q4_1,
    7: WeightFormat.gguf_q8_0,
    8: WeightFormat.gguf_q5_0,
    9: WeightFormat.gguf_q5_1,
    10: WeightFormat.gguf_q2_k,
    11: WeightFormat.gguf_q3_k_s,
    12: WeightFormat.gguf_q3_k_m,
    13: WeightFormat.gguf_q3_k_l,
    14: WeightFormat.gguf_q4_k_s,
    15: WeightFormat.gguf_q4_k_m,
    16: WeightFormat.gguf_q5_k_s,
    17: WeightFormat.gguf_q5_k_m,
    18: WeightFormat.gguf_q6_k,
}


def refuse(what: str) -> EstimatorError:
    return EstimatorError(f"the checkpoint's quantization_config is {what}, a layout not modelled here; {FIX}")


def four_bit_groups(quant: dict[str, Any], method: str) -> None:
    """GPTQ and AWQ as modelled: 4 bits in groups of 128 (``bits``/``w_bit``, ``group_size``/``q_group_size``)."""
    bits = quant.get("bits", quant.get("w_bit", 4))
    group = quant.get("group_size", quant.get("q_group_size", GPTQ_GROUP))
    if bits != 4 or group != GPTQ_GROUP:
        raise refuse(f"{method} with {bits} bits in groups of {group} (modelled: 4 bits, groups of 128)")
    if method == "awq" and str(quant.get("version", "gemm")).lower() != "gemm":
        raise refuse(f"AWQ version {quant.get('version')} (modelled: gemm)")


def nvfp4_scope(excluded: Any) -> WeightFormat:
    """NVFP4 on every decoder linear map: only the head (and routers, the ``gate`` of MoE layers) may be excluded."""
    names = [str(name).removeprefix("re:").rstrip("$") for name in excluded or []]
    kept = [name for name in names if "lm_head" not in name and not name.endswith(("mlp.gate", "router"))]
    if kept:
        raise refuse(f"NVFP4 with {', '.join(kept[:3])} left unquantised (modelled: every decoder linear map)")
    return WeightFormat.nvfp4


def compressed_tensors_format(quant: dict[str, Any]) -> WeightFormat:
    """compressed-tensors: the format of its config groups (all groups must agree)."""
    groups = quant.get("config_groups") or {}
    formats = {str(group.get("format") or quant.get("format")) for group in groups.values() if isinstance(group, dict)}
    formats = formats or {str(quant.get("format"))}
    if formats == {"nvfp4-pack-quantized"}:
        return nvfp4_scope(quant.get("ignore"))
    if formats == {"float-quantized"}:
        strategies = {
            str((group.get("weights") or {}).get("strategy")) for group in groups.values() if isinstance(group, dict)
        }
        if strategies == {"tensor"}:
            return WeightFormat.fp8
        raise refuse(f"compressed-tensors fp8 with strategy {', '.join(sorted(strategies))} (modelled: tensor)")
    raise refuse(f"compressed-tensors format {', '.join(sorted(formats))}")


def bitsandbytes_format(quant: dict[str, Any]) -> WeightFormat:
    if quant.get("load_in_8bit"):
        return WeightFormat.int8
    if quant.get("load_in_4bit"):
        kind = str(quant.get("bnb_4bit_quant_type", "fp4"))
        if kind != "nf4":
            raise refuse(f"bitsandbytes 4-bit {kind} (modelled: nf4)")
        return WeightFormat.nf4 if quant.get("bnb_4bit_use_double_quant") else WeightFormat.nf4_no_double_quant
    raise refuse("bitsandbytes without load_in_4bit or load_in_8bit")


def checkpoint_weight_format(config: dict[str, Any]) -> WeightFormat | None:
    """The format of the weights a config.json describes: from ``quantization_config`` (see the module's table),
    None when it has none. gpt-oss-20b's ``{"quant_method": "mxfp4", ...}`` → mxfp4; DeepSeek-V3's
    ``{"quant_method": "fp8", "weight_block_size": [128, 128]}`` → fp8-block."""
    quant = config.get("quantization_config")
    if quant is None:
        return None
    if not isinstance(quant, dict):
        raise EstimatorError("config.json's quantization_config is not an object; fix the file or drop the key")
    method = str(quant.get("quant_method", "")).lower()
    if method == "mxfp4":
        return WeightFormat.mxfp4
    if method == "fp8":
        block = quant.get("weight_block_size")
        if block is None:
            return WeightFormat.fp8
        if list(block) == [FP8_BLOCK, FP8_BLOCK]:
            return WeightFormat.fp8_block
        raise refuse(f"fp8 in blocks of {block} (modelled: 128 x 128)")
    if method in ("gptq", "awq"):
        four_bit_groups(quant, method)
        return WeightFormat.gptq_int4 if method == "gptq" else WeightFormat.awq_int4
    if method == "modelopt":
        algo = str(quant.get("quant_algo", "")).upper()
        if algo == "NVFP4":
            if quant.get("group_size", NVFP4_GROUP) != NVFP4_GROUP:
                raise refuse(f"NVFP4 in groups of {quant.get('group_size')} (modelled: 16)")
            return nvfp4_scope(quant.get("exclude_modules", quant.get("ignore")))
        if algo == "FP8":
            return WeightFormat.fp8
        raise refuse(f"modelopt {algo or 'without quant_algo'}")
    if method == "compressed-tensors":
        return compressed_tensors_format(quant)
    if method == "bitsandbytes":
        return bitsandbytes_format(quant)
    raise refuse(f"quant_method {method or 'missing'}")


def gguf_file_format(metadata: dict[str, Any]) -> WeightFormat | None:
    """The llama.cpp mix a GGUF file names in ``general.file_type`` (15 → gguf-q4_k_m), None when absent or one
    not modelled (its tensor bytes are still exact: :func:`gguf_tensor_bytes`)."""
    file_type = metadata.get("general.file_type")
    return GGUF_FILE_TYPES.get(file_type) if isinstance(file_type, int) else None


def gguf_tensor_bytes(tensors: Iterable[TensorInfo]) -> int:
    """The weights a GGUF file holds: the sum of its tensors' bytes as the reader lists them (no metadata,
    no tokenizer, no alignment padding)."""
    return sum(t.nbytes for t in tensors)


def stored_weights(text: str) -> tuple[WeightFormat | None, int | None]:
    """What the checkpoint ``--config`` names holds: its weight format (from a config.json's
    quantization_config, or a GGUF file's type) and, for a GGUF file, its tensors' bytes (the weights exactly as
    stored; None otherwise). A plain config.json without quantization_config gives (None, None)."""
    import json

    from estimator.checkpoint.locate import model_path

    path, _ = model_path(text)
    if path.suffix.lower() == ".gguf" and path.is_file():
        from estimator.checkpoint.gguf_file import read_gguf

        metadata, tensors = read_gguf(path)
        return gguf_file_format(metadata), gguf_tensor_bytes(tensors)
    config = path / "config.json" if path.is_dir() else path
    if not config.is_file() or config.suffix.lower() != ".json":
        return None, None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None  # the spec reader has already said what is wrong with it
    return (checkpoint_weight_format(data) if isinstance(data, dict) else None), None

"""The whole causal-LM mapping of the installed transformers, measured: a small config of every type and its truth.

For every ``model_type`` in transformers' ``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES``:

- classify it (:data:`ENCODER_ONLY`, :data:`DECODER_HALVES`, else a decoder; the rule is data below);
- shrink the config class's own defaults to a small model with the same structure (:func:`shrink`: layers to
  the smallest count that keeps the layer pattern, widths to a few dozen, vocabulary 512, at most 4 experts and
  2 per token, windows and chunks of 16 tokens, so T1 = 5 is below them and T2 = 37 beyond; per-type fixes in
  :data:`OVERRIDES`);
- measure, with real tensors on the CPU in bfloat16: ``parameters()``, peft's LoRA r=8 on ``all-linear``
  (trainable parameters, or peft's refusal), and one forward with ``use_cache=True`` over T1 and over T2
  tokens, every tensor reachable from the returned cache (float tensors summed; integer and boolean ones,
  bookkeeping, listed apart).

Each type is measured in a forked child under a time limit, so one that crashes or hangs is recorded, not fatal.
One JSON file is written: ``tests/data/transformers_sweep/transformers-<version>.json``.

    nice -n 10 python tools/transformers_sweep.py                 # measure, write the data file
    python tools/transformers_sweep.py --check FILE               # compare the tool with a data file
    python tools/transformers_sweep.py --coverage [FILE]          # the README's coverage table (markdown)

``tests/test_transformers_sweep.py`` runs the same comparison (:func:`compare_type`) in the suite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "transformers_sweep"
T1, T2 = 5, 37  # tokens of the two forwards: below and beyond every window and chunk (WINDOW)
WINDOW = 16
DTYPE = "bfloat16"
RANK = 8
SECONDS = 120  # per type, in its child
MAX_LAYERS = 12
LAYER_DICTS = ("per_layer_config",)  # dicts keyed by layer index: kept as they are but for the layers cut
CACHE_FIELDS = (
    "past_key_values",
    "cache",
    "cache_params",
    "state",
    "mems",
    "past_buckets_states",
)  # where an output keeps its cache

# --- classification (the rule, as data) ---------------------------------------------------------------------
ENCODER_ONLY_RULE = "an encoder (bidirectional, masked-LM pretrained) that is causal only with is_decoder=True"
ENCODER_ONLY = frozenset(
    {"bert", "bert-generation", "big_bird", "camembert", "data2vec-text", "electra", "ernie", "megatron-bert"}
    | {"rembert", "roberta", "roberta-prelayernorm", "roc_bert", "roformer", "xlm-roberta", "xlm-roberta-xl"}
    | {"xmod", "xlm", "xlnet"}  # XLM: a masked/translation LM; XLNet: a permutation LM with memory, not a cache
)
DECODER_HALF_RULE = "the decoder half of an encoder-decoder (its config is the encoder-decoder's)"
DECODER_HALVES = frozenset(
    {"bart", "bigbird_pegasus", "blenderbot", "blenderbot-small", "marian", "mbart", "mvp", "pegasus", "plbart"}
    | {"prophetnet", "trocr", "whisper", "musicgen", "musicgen_melody"}
)
DECODER_RULE = "a decoder: causal self-attention or recurrent state, generates with a cache"


def classify(model_type: str, config: Any = None) -> tuple[str, str]:
    """(class, rule) of a model type: "encoder-only", "decoder-half" or "decoder"; a type in neither table
    whose config class is an encoder-decoder (``is_encoder_decoder``) is a decoder half too."""
    if model_type in ENCODER_ONLY:
        return "encoder-only", ENCODER_ONLY_RULE
    if model_type in DECODER_HALVES or bool(getattr(config, "is_encoder_decoder", False)):
        return "decoder-half", DECODER_HALF_RULE
    return "decoder", DECODER_RULE


# --- the shrinker ---------------------------------------------------------------------------------------------
LAYER_KEYS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers", "num_decoder_layers")
OTHER_LAYER_KEYS = ("num_blocks",)  # a second count of the same layers (xLSTM), set to the first's
PERIOD_KEY = re.compile(r"(interval|period|pattern|offset|first_k_dense|_step|freq|every)", re.I)
HEADS = ("num_attention_heads", "n_head", "num_heads", "n_heads", "encoder_attention_heads", "decoder_attention_heads")
KV_HEADS = ("num_key_value_heads", "n_kv_heads", "num_kv_heads", "multi_query_group_num", "n_head_kv")
EXPERTS = re.compile(r"^(num_experts|num_local_experts|n_routed_experts|moe_num_experts|num_routed_experts|n_experts)$")
TOP_K = re.compile(r"^(num_experts_per_tok|moe_topk|top_k|num_experts_per_token|moe_k|num_selected_experts)$")
WINDOWS = re.compile(r"(window(_size|_len)?|attention_chunk_size)$")
WIDTH = re.compile(r"(size|dim|hidden|inner|width|_ff|ffn|channels)", re.I)
NOT_WIDTH = re.compile(r"(vocab|position|token|window|chunk|kernel|conv|state|rank|group|bucket|ctx|seq|length)", re.I)
SMALL = {
    "hidden_size": 64, "d_model": 64, "n_embd": 64, "hidden_dim": 64, "dim": 64, "embed_dim": 64,
    "head_dim": 16, "kv_lora_rank": 32, "q_lora_rank": 32, "qk_rope_head_dim": 8, "qk_nope_head_dim": 16,
    "v_head_dim": 16, "state_size": 8, "d_state": 8, "mamba_d_state": 8, "ssm_state_size": 8, "vocab_size": 512,
    "n_shared_experts": 1, "n_group": 1, "topk_group": 1, "num_expert_group": 1, "rotary_dim": 8,
}  # fmt: skip
INTERMEDIATE = 96
NOISE = {"transformers_version", "architectures", "output_hidden_states", "return_dict", "chunk_size_feed_forward",
         "id2label", "label2id", "problem_type", "_name_or_path", "output_attentions", "torchscript",
         "tokenizer_class", "task_specific_params", "finetuning_task", "prefix", "dtype", "torch_dtype"}  # fmt: skip

# Per-type fixes where the generic shrink breaks a type, or where the config class's own defaults do not build
# in transformers (a None head_dim, KV-head count, top-k or layer list): {model_type: fields set after the shrink}.
ROPE = {"rope_type": "default", "rope_theta": 10000.0}
QWEN4_INDEXER = {"indexer_n_heads": 2, "indexer_kv_heads": 1, "indexer_head_dim": 16, "indexer_budget": 16,
                 "indexer_compress_ratio": 4}  # fmt: skip
MAMBA2_HEADS = {"mamba_n_heads": 8, "mamba_d_head": 16}  # heads × head dim = expand (2) × hidden (64)
OVERRIDES: dict[str, dict[str, Any]] = {
    "bamba": {**MAMBA2_HEADS, "attn_layer_indices": [1]},  # the default (None) builds no attention layer
    "granitemoehybrid": {**MAMBA2_HEADS, "layer_types": ["mamba", "attention"]},
    "mamba2": {"num_heads": 8},
    "cohere_compass_text": {"rope_parameters": {"full_attention": ROPE, "sliding_attention": ROPE}},
    "dbrx": {"attn_config": {"kv_n_heads": 2, "rope_theta": 10000.0, "clip_qkv": 8.0}},
    "dots1": {"n_routed_experts": 4, "num_experts_per_tok": 2, "n_shared_experts": 1},
    "dots3_note_text": {"head_dim": 40},  # its SWA layers' head: their own nope (32) + rope (8)
    "dots3_note": {"text_config": {"head_dim": 40}},
    "deepseek_v2": {"num_experts_per_tok": 2},
    **{t: {"head_dim": 16} for t in ("hunyuan_v1_dense", "hunyuan_v1_moe", "ministral")},
    "nemotron": {"num_key_value_heads": 2},
    "lfm2_moe": {"layer_types": ["conv", "full_attention", "conv", "full_attention"], "num_hidden_layers": 4},
    "dory": {"n_input_layers": 2, "n_recurrent_layers": 4, "n_output_layers": 2},
    "hrm_text": {"num_layers_per_stack": 1},
    "zamba2": {"attention_head_dim": 32, "mamba_headdim": 16, "attention_hidden_size": 128},
    "zamba": {"attention_hidden_size": 128, "attention_head_dim": 32},
    "reformer": {"is_decoder": True, "axial_pos_embds_dim": [32, 32]},
    "gemma3n_text": {"num_kv_shared_layers": 5},
    "xlstm": {"hidden_size": 128, "embedding_dim": 128},
    "qwen4_exp_text": QWEN4_INDEXER,
    "qwen4_exp": {"text_config": QWEN4_INDEXER},
    "gemma4_assistant": {"text_config": {"hidden_size_per_layer_input": 0}},
}
FLOAT32 = {"reformer": "its CPU kernels mix dtypes in bfloat16 (RuntimeError: mixed dtype)"}  # measured in float32
LAYERS: dict[str, int] = {
    "zamba": 12,
    "recurrent_gemma": 3,
    "gemma3n_text": 10,
    "hrm_text": 8,
}  # where the generic count breaks


def period(values: list[Any]) -> int:
    """The smallest p with values[i] == values[i % p] for every i (len(values) if none shorter)."""
    for p in range(1, len(values) + 1):
        if all(values[i] == values[i % p] for i in range(len(values))):
            return p
    return len(values)


INDEX_LISTS = ("layer_ids", "layer_indices", "layers_idx")  # lists of layer indices, cut with the layers


def own_layer(value: Any, config: dict[str, Any]) -> Any:
    """One layer's own fields (``per_layer_config``), shrunk; a width the layer sets apart from the model's stays
    apart (twice the model's small value), or transformers drops it as equal to the default."""
    if not isinstance(value, dict):
        return value
    small = shrink(value, 1)
    for key, width in small.items():
        if isinstance(width, int) and not isinstance(width, bool) and key in config and value[key] != config[key]:
            small[key] = 2 * width
    return small


def layer_keyed(value: Any, layers: int) -> bool:
    """A dict keyed by layer indices (``per_layer_config``)."""
    return isinstance(value, dict) and bool(value) and all(str(k).isdigit() and int(k) < layers for k in value)


def small_layers(config: dict[str, Any], layers: int) -> int:
    """The fewest layers that keep the structure: a whole period of every per-layer list, every value of an
    irregular one, and past every interval or first-k-dense count; at least 2, at most MAX_LAYERS."""
    wanted = 2
    for value in config.values():
        if isinstance(value, list) and len(value) == layers and layers > 1:
            p = period(value)
            if p <= MAX_LAYERS:
                wanted = max(wanted, p)
            else:  # irregular: the shortest prefix holding every distinct value
                seen = [v if not isinstance(v, list | dict) else json.dumps(v) for v in value]
                distinct = set(seen)
                wanted = max(wanted, next(i + 1 for i in range(len(seen)) if set(seen[: i + 1]) == distinct))
        if layer_keyed(value, layers):  # keep the first layer given its own config
            wanted = max(wanted, min(int(k) for k in value) + 1)
    for key, value in config.items():  # keep the first layer of every list of layer indices
        if key.endswith(INDEX_LISTS) and isinstance(value, list) and value and all(isinstance(i, int) for i in value):
            wanted = max(wanted, min(value) + 1)
    for key, value in config.items():
        if PERIOD_KEY.search(key) and isinstance(value, int) and not isinstance(value, bool) and 0 < value < layers:
            wanted = max(wanted, value + 1 if "offset" in key or "first_k" in key else value)
    return min(wanted, MAX_LAYERS, layers)


def shrink(config: dict[str, Any], depth: int = 0, layers: int | None = None) -> dict[str, Any]:
    """A small copy of a config dict (and its nested sub-configs) with the same structure (the module docstring);
    ``layers`` overrides the count of layers chosen."""
    out = dict(config)
    layer_key = next((k for k in LAYER_KEYS if isinstance(out.get(k), int) and out[k] > 0), None)
    if layer_key is not None:
        before = out[layer_key]
        after = layers or small_layers(out, before)
        for key, value in out.items():
            if isinstance(value, list) and len(value) == before and before > 1:
                out[key] = value[:after]
            elif layer_keyed(value, before):
                out[key] = {k: own_layer(v, out) for k, v in value.items() if int(k) < after}
            elif key.endswith(INDEX_LISTS) and isinstance(value, list) and all(isinstance(i, int) for i in value):
                out[key] = [i for i in value if i < after]
        out[layer_key] = after
        for key in OTHER_LAYER_KEYS:
            if isinstance(out.get(key), int) and out[key] == before:
                out[key] = after
    heads_before = next((out[k] for k in HEADS if isinstance(out.get(k), int)), None)
    for key, value in list(out.items()):
        if isinstance(value, dict) and depth < 3 and key not in ("rope_scaling", "rope_parameters", *LAYER_DICTS):
            if any(isinstance(v, int) for v in value.values()):
                out[key] = shrink(value, depth + 1)
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            continue
        if key in HEADS:
            out[key] = min(value, 4)
        elif key in KV_HEADS:
            out[key] = value if value == 1 else (min(value, 4) if value == heads_before else min(value, 2))
        elif EXPERTS.match(key):
            out[key] = min(value, 4)
        elif TOP_K.match(key):
            out[key] = min(value, 2)
        elif WINDOWS.search(key):
            out[key] = min(value, WINDOW)
        elif "vocab" in key:
            out[key] = min(value, SMALL["vocab_size"])
        elif key.endswith("_token_id") and value >= SMALL["vocab_size"]:
            out[key] = 2
        elif key in SMALL:
            out[key] = min(value, SMALL[key])
        elif key.endswith("head_dim"):
            out[key] = min(value, 16)
        elif "intermediate" in key or key in ("ffn_dim", "n_inner", "d_ff", "ffn_hidden_size"):
            out[key] = min(value, INTERMEDIATE)
        elif WIDTH.search(key) and not NOT_WIDTH.search(key) and value >= 128:
            out[key] = 64
    if isinstance(out.get("qk_rope_head_dim"), int) and isinstance(out.get("head_dim"), int):
        out["head_dim"] = out["qk_rope_head_dim"]  # MLA: the rotary part is the head_dim its rotary embedding reads
    if isinstance(out.get("qk_head_dim"), int) and isinstance(out.get("qk_nope_head_dim"), int):
        out["qk_head_dim"] = out["qk_nope_head_dim"] + out["qk_rope_head_dim"]
    return out


def small_config(model_type: str) -> Any:
    """The config class's defaults, shrunk (:func:`shrink`) and overridden (:data:`OVERRIDES`)."""
    import transformers

    defaults = transformers.AutoConfig.for_model(model_type).to_dict()
    small = shrink(defaults, layers=LAYERS.get(model_type))
    fields = {k: v for k, v in small.items() if k not in NOISE and k != "model_type"}
    for key, value in OVERRIDES.get(model_type, {}).items():  # a sub-config's fields merged into it
        fields[key] = (
            {**fields[key], **value} if isinstance(value, dict) and isinstance(fields.get(key), dict) else value
        )
    return transformers.AutoConfig.for_model(model_type, **fields)


def stored_config(config: Any) -> dict[str, Any]:
    """``config.to_dict()`` without the bookkeeping keys (:data:`NOISE`), at every level."""

    def clean(d: dict[str, Any]) -> dict[str, Any]:
        return {k: clean(v) if isinstance(v, dict) else v for k, v in d.items() if k not in NOISE}

    return clean(config.to_dict())


# --- the measurement --------------------------------------------------------------------------------------------
def cache_tensors(cache: Any) -> list[tuple[str, Any]]:
    """Every tensor reachable from ``cache`` (attributes, lists, tuples, dicts), each once, by its first path."""
    import torch

    found: list[tuple[str, Any]] = []
    seen: set[int] = set()

    def walk(obj: Any, path: str, depth: int) -> None:
        if id(obj) in seen or depth > 8:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            found.append((path, obj))
        elif isinstance(obj, list | tuple):
            for i, item in enumerate(obj):
                walk(item, f"{path}.{i}", depth + 1)
        elif isinstance(obj, dict):
            for key, item in obj.items():
                walk(item, f"{path}.{key}", depth + 1)
        elif isinstance(obj, torch.nn.Module | transformers_config_type()):
            return
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            for key, item in vars(obj).items():
                walk(item, f"{path}.{key}" if path else key, depth + 1)

    walk(cache, "", 0)
    return found


def transformers_config_type() -> type:
    import transformers

    return transformers.PretrainedConfig


def describe(tensors: list[tuple[str, Any]]) -> dict[str, Any]:
    """Float tensors summed (bytes) and listed; integer and boolean ones (bookkeeping) listed apart."""
    floats, books = [], []
    total = 0
    for path, t in tensors:
        line = f"{path.lstrip('.')} {str(t.dtype).removeprefix('torch.')} {list(t.shape)}"
        if t.is_floating_point() or t.is_complex():
            floats.append(line)
            total += t.numel() * t.element_size()
        else:
            books.append(line)
    return {"bytes": total, "tensors": floats, "bookkeeping": books}


def measure(model_type: str) -> dict[str, Any]:
    """The truth for one type (see the module docstring); raises whatever transformers or peft raise."""
    import peft
    import torch
    import transformers

    config = small_config(model_type)
    record: dict[str, Any] = {"config": stored_config(config), "config_class": type(config).__name__}
    kind, rule = classify(model_type, config)
    record.update({"class": kind, "rule": rule})
    if kind != "decoder":
        return record
    errors: dict[str, str] = {}
    torch.manual_seed(0)
    dtype = "float32" if model_type in FLOAT32 else DTYPE
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype)).eval()
    record["dtype"] = dtype
    record["model_class"] = type(model).__name__
    record["params"] = sum(p.numel() for p in model.parameters())
    with torch.device("meta"):
        meta = transformers.AutoModelForCausalLM.from_config(config)
        try:
            lora = peft.get_peft_model(meta, peft.LoraConfig(r=RANK, target_modules="all-linear"))
            record["lora_r8_all_linear"] = sum(p.numel() for p in lora.parameters() if p.requires_grad)
        except Exception as error:
            record["lora_refused"] = first_line(error)
    vocab = int(model.get_input_embeddings().weight.shape[0])
    cache: dict[str, Any] = {}
    for tokens in (T1, T2):
        ids = (torch.arange(tokens).reshape(1, tokens) * 7 + 3) % min(vocab, 500)
        try:
            with torch.no_grad():
                out = model(input_ids=ids, use_cache=True)
            past = next((getattr(out, k) for k in CACHE_FIELDS if getattr(out, k, None) is not None), None)
            if past is None:
                errors[f"cache_{tokens}"] = f"the output holds no past_key_values ({type(out).__name__})"
                continue
            cache[str(tokens)] = {"class": type(past).__name__, **describe(cache_tensors(past))}
        except Exception as error:
            errors[f"cache_{tokens}"] = first_line(error)
    record["cache"] = cache
    if errors:
        record["errors"] = errors
    return record


def first_line(error: BaseException) -> str:
    """The error's type and message on one line, at most 300 characters of it."""
    text = " ".join(str(error).split())
    text = re.sub(r"\{([^{}]*)\}", lambda m: "{" + ", ".join(sorted(m[1].split(", "))) + "}", text)  # a set's order
    return f"{type(error).__name__}: {text[:300]}".rstrip(": ")


def start_child(work: Callable[[str], dict[str, Any]], item: str) -> tuple[int, Path]:
    """Fork a child that runs ``work(item)`` and writes its result (or its error) as JSON to a file."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            import torch

            torch.set_num_threads(1)
            try:
                result = work(item)
            except Exception as error:
                result = {"error": first_line(error)}
            out.write_text(json.dumps(result))
        except BaseException:
            code = 1
        os._exit(code)
    return pid, out


def finish_child(out: Path, status: int) -> dict[str, Any]:
    text = out.read_text() if out.exists() else ""
    out.unlink(missing_ok=True)
    if not text:
        return {"error": f"the child process died (wait status {status})"}
    return json.loads(text)  # type: ignore[no-any-return]


def forked(
    work: Callable[[str], dict[str, Any]], items: list[str], workers: int = 2
) -> Iterator[tuple[str, dict[str, Any], float]]:
    """``work(item)`` for each item in forked children, ``workers`` at a time, each under :data:`SECONDS`:
    (item, its result, seconds) as each ends; a crash or a timeout gives {"error": why}."""
    pending, running = list(items), dict[int, tuple[str, Path, float]]()
    while pending or running:
        while pending and len(running) < workers:
            item = pending.pop(0)
            pid, out = start_child(work, item)
            running[pid] = (item, out, time.monotonic())
        time.sleep(0.02)
        for pid, (item, out, start) in list(running.items()):
            finished, status = os.waitpid(pid, os.WNOHANG)
            if finished:
                result = finish_child(out, status)
            elif time.monotonic() - start > SECONDS:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                out.unlink(missing_ok=True)
                result = {"error": f"timeout: over {SECONDS} s"}
            else:
                continue
            del running[pid]
            yield item, result, time.monotonic() - start


def measure_all(types: list[str]) -> dict[str, dict[str, Any]]:
    """:func:`measure` for each type, in forked children (:func:`forked`); an error keeps the type's class."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    done = {}
    for model_type, record, seconds in forked(measure, types):
        record.setdefault("config_class", CONFIG_MAPPING_NAMES[model_type])
        if "class" not in record:
            kind, rule = classify(model_type)
            record.update({"class": kind, "rule": rule})
        done[model_type] = record
        status_text = record.get("error") or record.get("errors") or record.get("class")
        print(f"{model_type:28s} {seconds:5.1f} s  {str(status_text)[:120]}", flush=True)
    return done


def quiet() -> None:
    """transformers' warnings about tiny random models, and torch's logs, off: the numbers are unaffected."""
    import logging
    import warnings

    import transformers

    transformers.logging.set_verbosity_error()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")


def generate(only: list[str] | None = None) -> Path:
    """Measure every type (or ``only``) and write the data file; returns its path."""
    import peft
    import torch
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    quiet()
    path = DATA / f"transformers-{transformers.__version__}.json"
    types: dict[str, Any] = {}
    if only and path.exists():
        types = json.loads(path.read_text())["types"]
    chosen = [t for t in sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES) if not only or t in only]
    types.update(measure_all(chosen))
    data = {
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__, "peft": peft.__version__},
        "conventions": {
            "dtype": DTYPE,
            "tokens": [T1, T2],
            "lora": f"peft LoraConfig(r={RANK}, all-linear)",
            "window": WINDOW,
            "mapping": "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
        },
        "types": dict(sorted(types.items())),
    }
    DATA.mkdir(parents=True, exist_ok=True)
    lines = [
        f" {json.dumps(k)}: {json.dumps(v, sort_keys=True, separators=(',', ':'))}" for k, v in sorted(types.items())
    ]
    head = {k: v for k, v in data.items() if k != "types"}
    text = json.dumps(head, sort_keys=True, separators=(",", ":"))[:-1] + ',"types":{\n' + ",\n".join(lines) + "\n}}\n"
    path.write_text(text)
    return path


# --- the tool against the data --------------------------------------------------------------------------------
def tool_answer(
    model_type: str, config: dict[str, Any], folder: Path, dtype: str = DTYPE, tokens: tuple[int, ...] = (T1, T2)
) -> dict[str, Any]:
    """What the tool says for a stored config: {"path": "analytic"|"measured", "params", "lora", "cache": {T:
    bytes or None}, "cache_refused": why or None}; raises EstimatorError where it refuses the whole config."""
    from estimator.errors import UnknownFamilyError
    from estimator.hf_config import spec_from_hf_config

    path = folder / "config.json"
    path.write_text(json.dumps({**config, "model_type": model_type}))
    try:
        spec = spec_from_hf_config(path)
    except UnknownFamilyError as unknown:
        return measured_answer(unknown, dtype, tokens)
    return analytic_answer(spec, dtype, model_type)


DTYPES = {"bfloat16": "bf16", "float32": "fp32"}  # torch's names: the tool's


def analytic_answer(spec: Any, dtype: str, model_type: str) -> dict[str, Any]:
    from estimator.architecture import total_params
    from estimator.errors import EstimatorError
    from estimator.kv import kv_cache_bytes
    from estimator.layout import ExpertLayout
    from estimator.stores.kinds import peft_target_modules
    from estimator.stores.targets import lora_params, resolve_targets
    from estimator.transformers_rules import transformers_kv_heads
    from estimator.units import DType
    from estimator.validate.checks import transformers_format

    experts = ExpertLayout.fused if spec.is_moe else ExpertLayout.per_expert
    lora: int | str
    try:
        targets = resolve_targets(spec, "all-linear", experts)
        modules = peft_target_modules(targets, spec)
        lora = lora_params(targets, RANK) if modules == "all-linear" else "refused"
    except EstimatorError as error:
        lora = f"refused: {error}"
    held = transformers_format(spec, DType(DTYPES[dtype]))
    factor = transformers_kv_heads(spec) // spec.num_key_value_heads if spec.num_key_value_heads else 1
    cache = {str(t): factor * kv_cache_bytes(spec, t, held) for t in (T1, T2)}
    # transformers' causal LM of a multimodal wrapper is the whole model: the tool's --part all (its towers and
    # projector counted too); its adapters and cache stay the language model's, as the tool says
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from estimator.families.towers import is_wrapper_language_model
    from estimator.whole_model import whole_model_of

    built = str(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type))
    wrapper = is_wrapper_language_model(spec.notes) and built.endswith("ForConditionalGeneration")
    params = whole_model_of(spec)[0] if wrapper else total_params(spec)
    return {"path": "analytic", "family": spec.model_type, "params": params, "lora": lora, "cache": cache,
            "cache_refused": None, "wrapper": wrapper}  # fmt: skip


def measured_answer(unknown: Any, dtype: str, tokens: tuple[int, ...]) -> dict[str, Any]:
    """The measured path's answer (:func:`estimator.validate.unknown.measure_unknown`, in this process), once per
    token count."""
    from estimator.units import DType
    from estimator.validate.unknown import measure_unknown

    cache: dict[str, int | None] = {}
    params = lora = refused = None
    for length in tokens:
        result = measure_unknown(unknown, "sweep", length, RANK, DType(DTYPES[dtype]), DType.bf16, 1)
        params = result.params
        row = result.row("lora")
        lora = row.params if row.refused is None else "refused"
        kv = result.row("kv")
        cache[str(length)] = kv.bytes
        refused = refused or kv.refused
    return {"path": "measured", "params": params, "lora": lora, "cache": cache, "cache_refused": refused}


INTEGER_BYTES = {"int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint8": 1, "bool": 1}


def growing_integer_bytes(cache: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Per token count, the bytes of the integer tensors that grow with the text (their shape differs between the
    counts measured: positions or indices held per token, such as Qwen4-exp's ``indexer_position_ids`` [3, 1, T]).
    They are held as the keys are, so they are cache; integer tensors of the same shape at every count (window
    sizes, counters) are bookkeeping."""
    shapes: dict[str, dict[str, tuple[str, list[int]]]] = {}
    for tokens, found in cache.items():
        for line in found.get("bookkeeping", []):
            path, dtype, shape = line.split(" ", 2)
            shapes.setdefault(path, {})[tokens] = (dtype, json.loads(shape))
    grows = {path for path, seen in shapes.items() if len({str(shape) for _, shape in seen.values()}) > 1}
    total = dict.fromkeys(cache, 0)
    for path in grows:
        for tokens, (dtype, shape) in shapes[path].items():
            total[tokens] += INTEGER_BYTES[dtype] * math.prod(shape)
    return total


def truth_of(record: dict[str, Any]) -> dict[str, Any]:
    """The measured truth in :func:`tool_answer`'s shape: the cache is its float tensors and the integer tensors
    that grow with the text (:func:`growing_integer_bytes`)."""
    lora = record.get("lora_r8_all_linear", "refused")
    found = record.get("cache", {})
    integers = growing_integer_bytes(found)
    cache = {t: c["bytes"] + integers[t] for t, c in found.items()}
    return {"params": record.get("params"), "lora": lora, "cache": cache}


def differences(truth: dict[str, Any], answer: dict[str, Any]) -> list[str]:
    """Each quantity where the tool's answer is not the truth, as 'name: tool X, truth Y (±p%)'."""
    wrong = []
    pairs = [("params", answer["params"], truth["params"]), ("lora r=8 all-linear", answer["lora"], truth["lora"])]
    pairs += [(f"cache bytes at T={t}", answer["cache"].get(t), b) for t, b in sorted(truth["cache"].items())]
    for name, mine, real in pairs:
        if mine is None and name.startswith("cache") and answer["cache_refused"]:
            wrong.append(f"{name}: the tool refuses it ({answer['cache_refused']}), truth {real}")
        elif mine != real:
            off = (
                f" ({100 * (mine - real) / real:+.1f}%)"
                if isinstance(mine, int) and isinstance(real, int) and real
                else ""
            )
            wrong.append(f"{name}: tool {mine}, truth {real}{off}")
    return wrong


def compare_type(
    model_type: str, record: dict[str, Any], folder: Path, measured_tokens: tuple[int, ...] = (T1, T2)
) -> tuple[str, list[str]]:
    """(how the tool answers: "analytic (<module>)", "measured" or "refused: <line>", and its differences); the
    measured path is compared at ``measured_tokens`` only (each is one forward under FakeTensorMode)."""
    from estimator.errors import EstimatorError
    from estimator.families import MODULE_OF

    try:
        answer = tool_answer(model_type, record["config"], folder, record.get("dtype", DTYPE), measured_tokens)
    except EstimatorError as error:
        return f"refused: {error}", []
    truth = truth_of(record)
    if answer["path"] == "measured":
        truth["cache"] = {t: b for t, b in truth["cache"].items() if int(t) in measured_tokens}
        return "measured", differences(truth, answer)
    return f"analytic ({MODULE_OF.get(answer['family'], '?')})", differences(truth, answer)


def verdicts(
    path: Path, workers: int = 2, measured_tokens: tuple[int, ...] = (T1, T2)
) -> Iterator[tuple[str, dict[str, Any], str, list[str], float]]:
    """For each decoder type of a data file, each in a forked child (the tool may crash the process on some):
    (type, its record, how the tool answers, the differences, seconds)."""
    data = json.loads(path.read_text())
    types = data["types"]
    quiet()  # and import torch, transformers, peft and the tool once, before the children fork
    import estimator.hf_config
    import estimator.validate.checks
    import estimator.validate.unknown  # noqa: F401

    def work(model_type: str) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as folder:
            how, wrong = compare_type(model_type, types[model_type], Path(folder), measured_tokens)
        return {"how": how, "wrong": wrong}

    measured = [t for t, r in types.items() if r.get("class") == "decoder" and "error" not in r]
    for model_type, result, seconds in forked(work, measured, workers):
        if "error" in result:  # the tool crashed, or its process died
            result = {"how": "crashed", "wrong": [result["error"]]}
        yield model_type, types[model_type], result["how"], result["wrong"], seconds


def check(path: Path) -> int:
    """Compare the tool with every decoder type of a data file; print one line per type; 1 if any differ."""
    bad = 0
    for model_type, _, how, wrong, seconds in sorted(verdicts(path)):
        bad += bool(wrong)
        verdict = "exact" if not wrong else "WRONG " + "; ".join(wrong)
        print(f"{model_type:28s} {seconds:5.1f} s  {how[:100]}  {verdict}", flush=True)
    return 1 if bad else 0


def whole_model_type(model_type: str) -> bool:
    """Whether the causal LM of ``model_type`` is a whole multimodal model (``...ForConditionalGeneration``)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return str(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type)).endswith("ForConditionalGeneration")


def coverage(path: Path) -> str:
    """The README's coverage table: every decoder type, how the tool answers it, exact or not; then totals."""
    data = json.loads(path.read_text())
    rows = {}
    counts = dict.fromkeys(("analytic", "measured", "refused", "not measured"), 0)
    exact = 0
    for model_type, record, how, wrong, _ in verdicts(path):
        kind = how.split(" ")[0].rstrip(":")
        counts["refused" if kind == "crashed" else kind] += 1
        verdict = "exact" if not wrong else "**wrong**: " + "; ".join(wrong)
        refusals = [w for w in wrong if "the tool refuses it (" in w]
        if wrong and len(refusals) == len(wrong):  # the cache refused in one line, all else exact
            verdict = "parameters and LoRA exact; cache refused: " + refusals[0].split("the tool refuses it (")[1]
            verdict = verdict.rsplit("), truth", 1)[0]
        if len(wrong) == 1 and wrong[0].startswith("lora") and whole_model_type(model_type):
            off = wrong[0].rsplit("(", 1)[-1].rstrip(")")
            verdict = (f"parameters (the whole model, `--part all`) and cache exact; LoRA of the language model, "
                       f"as its row says (peft's all-linear on the whole model adapts the towers: {off})")  # fmt: skip
        if kind == "crashed":
            how, verdict = "refused", "its measurement crashes the process (SIGSEGV): the CLI says so in one line"
        exact += not wrong and kind in ("analytic", "measured")
        if kind == "refused":
            how, verdict = "refused", how.removeprefix("refused: ")
        if record.get("errors"):  # transformers' own forward gave no cache to compare with
            why = next(iter(record["errors"].values()))
            verdict = verdict.replace("exact", "parameters and LoRA exact", 1) + f"; cache not measured ({why[:90]})"
        rows[model_type] = f"| `{model_type}` | {how} | {verdict.replace('|', '/')[:300]} |"
    for model_type, record in data["types"].items():
        if record.get("class") == "decoder" and "error" in record:
            counts["not measured"] += 1
            rows[model_type] = f"| `{model_type}` | not measured | {record['error'].replace('|', '/')[:200]} |"
    version = data["versions"]["transformers"]
    head = [f"| model_type | answered | against transformers {version} |", "|---|---|---|"]
    total = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    return "\n".join(
        [*head, *(rows[t] for t in sorted(rows)), "", f"Decoder types: {len(rows)}: {total}; {exact} exact."]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", type=Path, metavar="FILE", help="compare the tool with a data file")
    parser.add_argument("--coverage", nargs="?", const="installed", metavar="FILE", help="print the coverage table")
    parser.add_argument("--only", nargs="*", help="measure these types only (merged into the existing file)")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.check)
    if args.coverage:
        print(coverage(installed_file() if args.coverage == "installed" else Path(args.coverage)))
        return 0
    print(generate(args.only))
    return 0


def installed_file() -> Path:
    from importlib.metadata import version

    return DATA / f"transformers-{version('transformers')}.json"


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["classify", "compare_type", "measure", "shrink"]

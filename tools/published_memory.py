"""Published serving measurements against the tool: each engine start-up log in
``tests/data/published/serving.toml`` recomputed from its settings, the KV pool (or, where the log prints no
pool, the tokens) compared with what the engine printed.

    python tools/published_memory.py            # the table, as in the README
    python tools/published_memory.py --check    # exit 1 unless every row is where MISSES says it is

``tests/test_published_memory.py`` runs the same comparison and checks the README's table against it.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "published" / "serving.toml"
CONFIGS = ROOT / "tests" / "data" / "hf_configs"
GiB = 2**30
TOLERANCE = 0.05
# What torch reports for a device, as logs print it (docs/engines.md, "What torch reports"), for rows whose own log
# does not print it; a row on any other device without a printed total is not recomputed.
REPORTED_GIB = {"H100": 79.19, "A100 80GB": 79.15, "A100 40GB": 39.39, "L4": 22.03, "RTX 3090": 23.58}
FORMATS = {"awq-int4": "int4-awq", "bnb-4bit": "nf4"}  # the rows' names for formats the tool names otherwise

# Rows the tool does not reproduce within 5%, and why (the test fails if one of them comes within 5%, so
# that this list stays true).
MISSES = {
    "vllm-gemma3-27b-h100-tp1-v0.19": "Gemma 3 27B is multimodal: vLLM loads the SigLIP vision tower (1.1 GiB) and "
    "profiles the encoder; the tool counts the language model only",
    "vllm-gpt-oss-120b-h100-tp1-util095-v0.11": "gpt-oss-120b on one H100 under vLLM 0.11: the pool is 5 GiB below "
    "the weights, sampler and non-torch terms (the log prints no breakdown)",
    "vllm-gpt-oss-120b-h100-tp1-len16000-blk128-v0.11": "gpt-oss-120b in llm-d-benchmark's 0.11 table: its printed "
    "activation is gpt-oss-20b's (7.38 GiB), which cannot give its 3.33 GiB pool; the tool is 0.34 GiB under",
    "vllm-qwen2-7b-a100-80gb-tp1-util025-v0.10.1": "vLLM 0.10.1 on an A100 (256 sequences): its profile peak is about "
    "1 GiB under what 0.11's sampler rate, read on H100, gives; the logs print no breakdown",
    "vllm-qwen2-7b-a100-80gb-tp2-util025-v0.10.1": "as above, at TP 2 (a small pool, so the same 1 GiB is 12%)",
    "vllm-llama3.1-8b-l4-tp1-len32000-util092-v0.11": "on an L4 (max_num_seqs 128, 2,048 batched tokens) the pool is "
    "0.31 GiB above the 0.11 rule's: the sampler rate read on H100 overstates this device's peak",
    "vllm-gpt-oss-20b-rtx3090-tp1-v0.10.1-gptoss": "the gpt-oss preview image of vLLM 0.10.1 loaded the experts "
    "unpadded (12.88 GiB, the checkpoint's 12.82 and the RoPE cache); the tool pads them as 0.10.1's Marlin does",
}


# What a row is compared on: the pool where the log prints it, else the tokens, blocks or loaded weights.
QUANTITIES = {
    "kv_cache_gib": "KV pool, GiB",
    "kv_cache_tokens": "KV cache, tokens",
    "gpu_blocks": "GPU blocks",
    "weights_gib": "weights loaded, GiB",
}


@dataclass(frozen=True)
class Result:
    row: dict[str, Any]
    quantity: str  # "KV pool, GiB" or "KV cache, tokens"
    published: float
    predicted: float | None  # None: the engine or version is not modelled
    why_not: str = ""

    @property
    def error(self) -> float | None:
        if self.predicted is None or self.published == 0:
            return None
        return (self.predicted - self.published) / abs(self.published)

    @property
    def within(self) -> bool:
        return self.error is not None and abs(self.error) <= TOLERANCE


def spec_of(model: str) -> Any:
    from estimator.checkpoint.locate import spec_from_path
    from estimator.zoo import load_spec

    for path in (CONFIGS / f"{model}.json", CONFIGS / "extra" / f"{model}.json"):
        if path.exists():
            return (
                spec_from_path(path, None)
                if not (ROOT / "model_specs" / f"{model}.toml").exists()
                else load_spec(model)
            )
    return load_spec(model)


def preset(row: dict[str, Any]) -> str:
    """The engine preset for this row's engine and version: vLLM 0.19-0.20 as `vllm`, 0.10-0.18 as `vllm-0.11`
    (the release whose logs its constants come from), SGLang as `sglang`; empty where none applies."""
    if row["engine"] == "sglang":
        return "sglang"
    if row["engine"] != "vllm":
        return ""
    version = row.get("engine_version", "")
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if (0, 19) <= parts <= (0, 20):
        return "vllm"
    if (0, 10) <= parts <= (0, 18):
        return "vllm-0.11"
    return ""


def modelled(row: dict[str, Any]) -> str:
    """Why the tool does not model this row's engine (empty: it does)."""
    if preset(row):
        return ""
    version = row.get("engine_version", "") or "(version not stated)"
    if row["engine"] != "vllm":
        return f"{row['engine']}: its pool rule is not modelled"
    if version.startswith("0.2") and version[:4] >= "0.21":
        return f"vLLM {version}: deducts its CUDA graphs' estimate from the pool (default since 0.21), not modelled"
    return f"vLLM {version}: an older profiling rule (V0 or early V1) than the releases modelled"


def recompute(row: dict[str, Any]) -> Result:
    """The row's pool (or tokens) as the tool computes it from the row's settings."""
    from estimator.layout import KVFormat
    from estimator.memory.engine_rules import default_knobs, plan_pool
    from estimator.memory.engines import Engine
    from estimator.memory.formats import WeightFormat
    from estimator.memory.serving import ServeSetup
    from estimator.units import DType

    key = next(k for k in QUANTITIES if k in row)
    quantity, published = QUANTITIES[key], float(row[key])
    if why := modelled(row):
        return Result(row, quantity, published, None, why)
    spec = spec_of(row["model"])
    printed = row.get("total_gpu_memory_gib")
    known = next((gib for name, gib in REPORTED_GIB.items() if row.get("gpu", "").startswith(name)), None)
    if printed is None and known is None:
        return Result(
            row, quantity, published, None, f"what torch reports for {row.get('gpu') or 'its GPU'} is unknown"
        )
    reported = round((printed or known) * GiB)
    length = row.get("max_model_len", spec.max_position_embeddings)
    engine = Engine(preset(row))
    knobs = default_knobs(engine, reported, row.get("gpu", "H100"), length, row.get("tp", 1))
    from dataclasses import replace

    knobs = replace(
        knobs,
        memory_fraction=row.get("gpu_memory_utilization", knobs.memory_fraction),
        max_num_seqs=row.get("max_num_seqs", knobs.max_num_seqs),
        max_num_batched_tokens=row.get("max_num_batched_tokens", knobs.max_num_batched_tokens),
    )
    weights = FORMATS.get(row.get("weights", "bf16"), row.get("weights", "bf16"))
    kv = {"fp8": DType.fp8, "fp32": DType.fp32, "fp16": DType.fp16}.get(row.get("kv_dtype", "bf16"), DType.bf16)
    from estimator.memory.engine_rules import mxfp4_backend
    from estimator.memory.weights import VLLM_MXFP4_PADDING

    # vLLM 0.10 ran MXFP4 experts through Marlin on Hopper too; 0.11 on moved Hopper to OpenAI's Triton kernels
    backend = "marlin" if row.get("engine_version", "").startswith("0.10") else mxfp4_backend(row.get("gpu", "H100"))
    if engine is not Engine.vllm and not engine.is_vllm:
        backend = "marlin"  # not used: SGLang's MXFP4 experts as the checkpoint stores them
    setup = ServeSetup(
        WeightFormat(weights), KVFormat(kv), row.get("tp", 1), expert_padding=VLLM_MXFP4_PADDING[backend]
    )
    pool = plan_pool(spec, setup, engine, knobs, reported)
    loaded = pool.weights_bytes + sum(r.bytes for r in pool.reserves if r.label.startswith("RoPE"))
    predicted = {"kv_cache_gib": pool.pool_bytes / GiB, "kv_cache_tokens": pool.tokens, "gpu_blocks": pool.blocks,
                 "weights_gib": loaded / GiB}[key]  # fmt: skip
    return Result(row, quantity, published, predicted)


def results() -> list[Result]:
    rows = tomllib.loads(DATA.read_text(encoding="utf-8"))["run"]
    return [recompute(row) for row in rows]


def table(found: list[Result]) -> str:
    """The Markdown table for the README: one row per published log."""
    lines = ["| log | engine | GPU, TP | quantity | published | tool | error |", "|---|---|---|---|---:|---:|---:|"]
    for r in found:
        row = r.row
        where = f"{row.get('gpu', '?')}, TP {row.get('tp', 1)}"
        engine = f"{row['engine']} {row.get('engine_version', '')}".strip()
        tool = "—" if r.predicted is None else f"{r.predicted:,.2f}" if "GiB" in r.quantity else f"{r.predicted:,}"
        published = f"{r.published:,.2f}" if "GiB" in r.quantity else f"{int(r.published):,}"
        error = "not modelled" if r.error is None else f"{100 * r.error:+.1f}%"
        lines.append(
            f"| [{row['id']}]({row['source']}) | {engine} | {where} | {r.quantity} | {published} | {tool} | {error} |"
        )
    within = sum(r.within for r in found)
    modelled = sum(r.predicted is not None for r in found)
    lines.append("")
    lines.append(
        f"{within} of {len(found)} within 5%: {within} of the {modelled} logs whose engine release the tool models; "
        f"{len(found) - modelled} it does not model (TGI, vLLM before 0.10 or from 0.21, devices whose reported "
        "memory is unknown), and says so."
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    found = results()
    print(table(found))
    if "--check" in argv:
        wrong = [r.row["id"] for r in found if r.within == (r.row["id"] in MISSES or r.predicted is None)]
        if wrong:
            print(f"rows not where MISSES says: {wrong}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main(sys.argv[1:]))

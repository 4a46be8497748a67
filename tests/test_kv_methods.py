"""``--kv-method``: the published ways to shrink the cache, sized from the model's config.

Every expected number is derived by hand below from the real config (Llama 2 7B: 32 layers, 32 heads,
head_dim 128, hidden 4,096; Llama 3.1 8B: 32 layers, 8 KV heads of 128, 8,030,261,248 parameters) and from
the paper's own accounting, with the source named where the headline comes from.
"""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from typing import Any

import pytest

from estimator.cli import main
from estimator.compare import estimate
from estimator.frontier import parse_kv_methods
from estimator.frontier.sizes import method_bytes_per_token, method_cache_bytes, method_fixed_bytes
from estimator.kv import KVFormat, kv_cache_bytes
from estimator.present.records import estimate_record
from estimator.query import Query
from estimator.units import DType
from estimator.zoo import load_spec, validate_spec

LLAMA31_8B_ELEMENTS = 2 * 32 * 8 * 128  # 65,536 K and V elements per token
LLAMA2_7B_LAYER_ELEMENTS = 2 * 32 * 128  # 8,192 per layer and token (MHA: 32 KV heads)
T128K = 131_072


def one(text: str) -> Any:
    (method,) = parse_kv_methods(text)
    return method


def llama31(kv: Any = DType.bf16) -> Query:
    return Query(load_spec("llama3.1-8b"), T128K, kv=kv)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_nvfp4_values_are_half_of_fp8_and_the_scales_add_an_eighth() -> None:
    """NVIDIA's blog: NVFP4 "cuts KV cache memory footprint by up to 50%" against FP8. NVFP4 (NVIDIA's definition:
    E2M1 values, one E4M3 scale per 16, one FP32 scale per tensor): the 4-bit values are exactly half of FP8's
    8 bits; the block scales add 8 / 16 = 0.5 bit per element, so the whole cache is 4.5 / 8 = 9/16 of FP8."""
    q = llama31()
    fp8_per_token = kv_cache_bytes(q.spec, 1, DType.fp8)
    assert fp8_per_token == LLAMA31_8B_ELEMENTS  # 1 byte each: 65,536
    nvfp4 = method_bytes_per_token(q, one("nvfp4"))
    scales = LLAMA31_8B_ELEMENTS // 16  # one byte per block of 16
    assert nvfp4 - scales == LLAMA31_8B_ELEMENTS * 4 / 8 == fp8_per_token / 2  # the headline's half: the values
    assert nvfp4 / fp8_per_token == Fraction(9, 16)  # with the block scales: 56.25% of FP8
    assert method_fixed_bytes(q, one("nvfp4")) == 32 * 2 * 4  # one FP32 scale per K and V tensor per layer


def test_commvq_two_bits_is_minus_87_5_percent_of_fp16() -> None:
    """CommVQ (arXiv 2506.18879, abstract): "reduces FP16 KV cache size by 87.5% with 2-bit quantization"."""
    q = llama31(DType.fp16)
    ratio = method_cache_bytes(q, one("commvq:bits=2"), T128K) / kv_cache_bytes(q.spec, T128K, DType.fp16)
    assert 1 - ratio == pytest.approx(0.875, rel=0.01)
    assert method_cache_bytes(q, one("commvq:bits=2"), T128K) == T128K * LLAMA31_8B_ELEMENTS * 2 // 8


def test_mha2mla_reproduces_minus_92_19_percent_on_llama2_7b() -> None:
    """MHA2MLA (arXiv 2502.14837, abstract): Llama 2 7B's cache "reduced by 92.19%" (d_kv = 64 with an int4 cache).
    Per layer and token each of the 32 heads keeps 2 · 8 partial-RoPE dims and a d_kv latent of 64: 32 · 80 =
    2,560 elements of 8,192 (−68.75% in the same dtype); in 4 bits against FP16: 2,560 · 4 / (8,192 · 16)."""
    spec = load_spec("llama2-7b")
    assert (spec.num_hidden_layers, spec.num_key_value_heads, spec.head_dim, spec.hidden_size) == (32, 32, 128, 4096)
    fp16 = kv_cache_bytes(spec, 1000, DType.fp16)
    int4 = Query(spec, 1000, kv=KVFormat(DType.int4, group_size=None))  # 4 bits flat, as the paper counts int4
    mha2mla = one("mha2mla:rank=64;rope=8")
    assert 1 - method_cache_bytes(int4, mha2mla, 1000) / fp16 == pytest.approx(0.9219, rel=0.01)
    assert method_cache_bytes(int4, mha2mla, 1000) == 1000 * 32 * 32 * (16 + 64) * 4 // 8
    same = Query(spec, 1000, kv=DType.fp16)
    assert 1 - method_cache_bytes(same, mha2mla, 1000) / fp16 == 1 - 2560 / LLAMA2_7B_LAYER_ELEMENTS == 0.6875


def test_transmla_reproduces_minus_93_percent_on_llama2_7b() -> None:
    """TransMLA (arXiv 2502.07864, abstract): "compressing 93% of the KV cache in LLaMA-2-7B": DeepSeek's latent
    form, kv_lora_rank 512 + qk_rope_head_dim 64 = 576 elements per layer against 8,192."""
    q = Query(load_spec("llama2-7b"), 1000)
    ratio = method_cache_bytes(q, one("transmla"), 1000) / kv_cache_bytes(q.spec, 1000, DType.bf16)
    assert ratio == Fraction(576, LLAMA2_7B_LAYER_ELEMENTS)
    assert 1 - ratio == pytest.approx(0.93, rel=0.01)


def test_a_cartridge_of_2048_tokens_against_llama31_8b_at_128k() -> None:
    """A Cartridge is a trained cache of N tokens (peft CartridgeConfig, sized as prefix tuning): 2,048 · 65,536
    values in bf16 = 268,435,456 bytes against the 128K cache's 131,072 · 131,072 = 17,179,869,184: 1/64."""
    q = llama31()
    cartridge = method_cache_bytes(q, one("cartridge:tokens=2048"), T128K)
    assert cartridge == 2048 * LLAMA31_8B_ELEMENTS * 2 == 268_435_456
    assert kv_cache_bytes(q.spec, T128K, DType.bf16) / cartridge == 64
    assert method_cache_bytes(q, one("cartridge:tokens=2048"), 1) == cartridge  # nothing grows with the text


@pytest.mark.validation
def test_cartridge_bytes_are_peft_cartridgeconfig_saved_file() -> None:
    """peft 0.21's CartridgeConfig on a real tiny GQA Llama (2 layers, 2 KV heads of 64): the tensors it saves
    are the method's fixed bytes, 16 tokens · 2 · 2 · 2 · 64 values · 4 bytes (fp32) = 32,768."""
    from estimator.stores.peft_configs import PeftConfig
    from estimator.validate.adapter_checks import saved_tuner

    fields = {**load_spec("llama3-70b").to_dict(), "num_hidden_layers": 2, "hidden_size": 256}
    fields.update(intermediate_size=512, num_attention_heads=4, num_key_value_heads=2, head_dim=64, vocab_size=256)
    tiny = validate_spec({**fields, "name": "tiny-gqa", "display_name": "tiny gqa"}, "tiny-gqa", "fix the test")
    q = Query(tiny, 64, adapter_dtype="fp32")
    config = PeftConfig("CartridgeConfig", {"task_type": "CAUSAL_LM", "num_virtual_tokens": 16})
    _, saved_bytes = saved_tuner(tiny, config)
    assert method_fixed_bytes(q, one("cartridge:tokens=16")) == saved_bytes == 16 * 2 * 2 * 2 * 64 * 4


def test_commvq_one_bit_llama31_8b_fits_128k_on_a_24gb_card(capsys: pytest.CaptureFixture[str]) -> None:
    """CommVQ (abstract): 1 bit lets "a LLaMA-3.1 8B model run with a 128K context length on a single RTX 4090".
    By hand: weights 8,030,261,248 · 2 bytes; the RTX 4090's 24 GiB (25,769,803,776 bytes) at --engine none's
    fraction 0.9; the 1-bit cache 131,072 · 65,536 / 8 = 1,073,741,824 bytes fits; bf16 (16x) does not."""
    args = ["serve-memory", "--model", "llama3.1-8b", "--tokens", "131072", "--accelerator", "rtx-4090"]
    code, out, err = run(capsys, *args, "--engine", "none", "--kv-method", "commvq:bits=1,commvq:bits=2", "--json")
    assert code == 0, err
    record = json.loads(out)
    pool = int(25_769_803_776 * 0.9) - 8_030_261_248 * 2
    one_bit, two_bit = record["kv_methods"]
    assert (one_bit["cache_bytes"], one_bit["kv_pool_bytes"], one_bit["fits"]) == (T128K * 65_536 // 8, pool, True)
    assert one_bit["longest_tokens"] == T128K  # the context window, its hard limit
    assert two_bit["cache_bytes"] == T128K * 65_536 * 2 // 8 == 2_147_483_648
    assert record["rows"][0]["fits"] is False  # the plain bf16 cache of 17,179,869,184 bytes does not
    assert "no engine release implements" in record["assumptions"][-1]


def test_eviction_keeps_a_fraction_of_what_each_layer_holds() -> None:
    """Mistral 7B v0.1 (every layer a window of 4,096): at 100,000 tokens each layer holds 4,096 and KVzip at
    0.3 keeps ⌈0.3 · 4,096⌉ = 1,229 of them; DMS 8x keeps 512; states and windows are the layout's."""
    spec = load_spec("mistral-7b-v0.1")
    q = Query(spec, 100_000)
    per_token = 2 * spec.num_hidden_layers * spec.num_key_value_heads * spec.head_dim * 2
    assert method_cache_bytes(q, one("kvzip:keep=0.3"), 100_000) == 1229 * per_token
    assert method_cache_bytes(q, one("dms:ratio=8"), 100_000) == 512 * per_token
    full = Query(load_spec("llama3.1-8b"), 100_000)
    assert method_cache_bytes(full, one("rkv:keep=0.1"), 100_000) == 10_000 * 131_072


def test_json_rows_and_the_lora_against_each_cache() -> None:
    """Llama 3 70B, 100k tokens, r = 32: the LoRA (828,375,040 bytes) against an NVFP4 cache of 92,160 bytes per
    token (163,840 elements · 4.5 bits) + 640 scale bytes, and a 1-bit CommVQ cache of 20,480 per token."""
    est = estimate("llama3-70b", "100k", 32, methods="kv,lora", kv_method="nvfp4,commvq:bits=1")
    record = estimate_record(est)
    nvfp4, commvq = record["kv_methods"]
    assert (nvfp4["bytes"], nvfp4["fixed_bytes"], nvfp4["growing_bytes"]) == (9_216_000_640, 640, 9_216_000_000)
    assert nvfp4["kv_to_this_bytes_ratio"] == 32_768_000_000 / 9_216_000_640
    lora = nvfp4["against"][0]
    assert lora["method"] == "lora" and lora["this_to_store_bytes_ratio"] == 9_216_000_640 / 828_375_040
    assert lora["crossover_tokens"] == -(-(828_375_040 - 640) // 92_160) == 8_989
    assert commvq["against"][0]["crossover_tokens"] == -(-828_375_040 // 20_480) == 40_448
    assert set(record["methods"][0]) <= set(nvfp4) | {"saved_params", "saved_bytes", "minimal_params", "minimal_bytes"}


def test_the_table_and_csv_show_a_row_per_method(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--model", "llama3-70b", "--methods", "kv,lora", "--kv-method", "commvq:bits=1")
    assert code == 0
    assert "CommVQ cache (1 bit per element)" in out and "2,048,000,000" in out and "16.0x" in out
    # 2,048,000,000 / 828,375,040 = 2.47; the 1-bit cache reaches the LoRA's bytes at ⌈828,375,040 / 20,480⌉
    row = [line for line in out.splitlines() if line.startswith("LoRA r=32, all-linear (bf16)  ")][-1]
    assert row.split()[-3:] == ["2.5x,", "at", "40,448"]
    assert "arXiv 2506.18879" in out  # the quality, cited in the assumptions
    code, out, _ = run(capsys, "--model", "llama3-70b", "--methods", "kv", "--kv-method", "kvtc:ratio=20", "--csv")
    last = next(csv.reader([out.splitlines()[-1]]))
    assert last == ["KVTC cache (÷20, a ratio the paper reports)", "kvtc:ratio=20", "", "1638400000", "16384.0", "20.0",
                    "100000"]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ("--model", "llama3-70b", "--kv-method", "fp2"),
            "unknown --kv-method 'fp2'; use a comma list of: nvfp4, turboquant:bits=3.5",
        ),
        (("--model", "llama3-70b", "--kv-method", "commvq:bits=3"), "commvq:bits=3 is out of range; give 1 or 2 bits"),
        (("--model", "llama3-70b", "--kv-method", "kvzip:keep=0"), "kvzip:keep=0 is out of range"),
        (
            ("--model", "llama3-70b", "--kv-method", "mha2mla:rank=64,rope=8"),
            "parameters of one method are parted by ';'",
        ),
        (("--model", "llama3-70b", "--kv-method", "turboquant:size=3"), "its parameters are bits (key=value)"),
        (("--model", "llama3-70b", "--kv-method", "nvfp4,nvfp4"), "gives a method twice"),
        (("--model", "deepseek-v3", "--kv-method", "transmla"), "transmla converts softmax attention"),
        (("--model", "llama2-7b", "--kv-method", "mha2mla:rope=80"), "does not fit head_dim 128"),
    ],
)
def test_bad_methods_are_one_line(capsys: pytest.CaptureFixture[str], args: tuple[str, ...], words: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and words in err and err.count("\n") == 1


def test_serve_memory_refuses_what_it_does_not_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "serve-memory", "--model", "llama3.1-8b", "--kv-method", "nvfp4")
    assert code == 2 and "no serving engine release implements these methods" in err and "--engine none" in err
    code, _, err = run(capsys, "serve-memory", "--model", "llama3.1-8b", "--engine", "none", "--kv-method", "kvzip")
    assert code == 2 and "eviction methods have no fixed bytes per token" in err


def test_sweep_adds_each_method_per_point(capsys: pytest.CaptureFixture[str]) -> None:
    """Llama 3 70B at 100,000 tokens: NVFP4 = 163,840 elements · 4.5 bits / 8 · T + 640 scale bytes."""
    args = ("sweep", "--model", "llama3-70b", "--tokens", "1k,100k", "--rank", "32", "--kv-method", "nvfp4", "--csv")
    code, out, _ = run(capsys, *args)
    rows = [dict(zip(out.splitlines()[0].split(","), line.split(","), strict=True)) for line in out.splitlines()[1:]]
    assert code == 0 and int(rows[1]["nvfp4_cache_bytes"]) == 92_160 * 100_000 + 640
    assert float(rows[1]["nvfp4_to_lora_bytes_ratio"]) == (92_160 * 100_000 + 640) / 828_375_040


def test_frontier_figure_draws_every_line_from_the_formulas() -> None:
    """One line per method, the plain cache, LoRA at two ranks, the smallest adapter and pretraining; at T = 10^5
    the 1-bit CommVQ line of Llama 3 70B is 163,840 elements / 8 = 20,480 bytes per token, the r = 32 LoRA
    828,375,040 / 10^5 and the smallest adapter prompt tuning, 20 · 8,192 · 2 = 327,680 bytes / 10^5."""
    from estimator.plots import FIGURES

    est = estimate("llama3-70b", "100k", 32, methods="kv,lora,pretraining", kv_method="commvq:bits=1,transmla")
    fig = FIGURES["kv_frontier"](est)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}

    def at(label: str, tokens: float = 1e5) -> float:
        x, y = lines[label].get_data()
        return float(y[list(x).index(tokens)])

    assert at("CommVQ cache (1 bit per element)") == 20_480
    assert at("TransMLA cache (latent 512 + RoPE 64)") == 80 * 576 * 2  # the latent per layer, bf16
    assert at("plain cache (bf16)") == 327_680
    assert at("LoRA r=32") == 828_375_040 / 1e5 and "LoRA r=8" in lines
    assert at("smallest adapter: prompt tuning (20 virtual tokens)") == 20 * 8192 * 2 / 1e5
    assert any(label.startswith("pretraining (0.0094") for label in lines)


def test_compare_gives_each_method_per_model(capsys: pytest.CaptureFixture[str]) -> None:
    """Llama 3.1 8B at 100,000 tokens, r = 32 all-linear (83,886,080 parameters, 167,772,160 bytes): a 1-bit CommVQ
    cache of 8,192 bytes per token reaches the LoRA's bytes at 167,772,160 / 8,192 = 20,480 tokens."""
    args = ("compare", "--model", "llama3.1-8b", "--tokens", "100k", "--kv-method", "commvq:bits=1", "--json")
    code, out, _ = run(capsys, *args)
    (record,) = json.loads(out)
    assert code == 0 and record["commvq_bits_1_bytes_per_token"] == 8192
    assert record["commvq_bits_1_to_lora_bytes_ratio"] == 8192 * 100_000 / 167_772_160
    assert record["commvq_bits_1_lora_crossover_tokens"] == 20_480 and record["kv_to_commvq_bits_1_bytes_ratio"] == 16

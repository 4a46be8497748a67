"""The accelerator table: every entry sourced from its vendor, checked against the vendor's words, and a
loader that rejects a bad file in one line naming the file and the entry."""

from __future__ import annotations

import doctest
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

import estimator.accelerators
from estimator.accelerators import (
    Accelerator,
    accelerator,
    accelerator_names,
    load_accelerators,
    load_accelerators_from,
)
from estimator.errors import EstimatorError

VENDOR_DOMAINS = ("nvidia.com", "amd.com", "google.com")
TERA = 10**12
GIGA = 10**9
GIB = 2**30


def test_every_entry_loads_with_positive_numbers_and_a_vendor_source() -> None:
    devices = load_accelerators()
    assert devices, "the packaged table is empty"
    assert [d.name for d in devices] == sorted(d.name for d in devices) == accelerator_names()
    for device in devices:
        numbers = [device.bf16_dense_flops_per_s, device.memory_bandwidth_bytes_per_s, device.memory_bytes]
        numbers += [device.fp8_dense_flops_per_s] if device.fp8_dense_flops_per_s is not None else []
        assert all(isinstance(n, int) and n > 0 for n in numbers), device
        url = urlparse(device.source)
        host = url.hostname or ""
        assert url.scheme == "https", device.source
        assert any(host == d or host.endswith("." + d) for d in VENDOR_DOMAINS), device.source
        assert device.display_name and device.note
        if device.fp8_dense_flops_per_s is not None:
            assert device.fp8_dense_flops_per_s >= device.bf16_dense_flops_per_s, device


def test_loading_is_cached() -> None:
    assert load_accelerators() is load_accelerators()


def test_mi300x_matches_the_amd_rocm_tables() -> None:
    mi300x = accelerator("mi300x")
    # rocm.docs.amd.com .../conceptual/gpu-arch/mi300.html, "Peak-performance capabilities of the MI300X":
    # "Matrix BF16 | 2048 | 1307.4" and "Matrix FP8 | 4096 | 2614.9" (Peak TFLOPS; no sparsity in this table).
    assert mi300x.bf16_dense_flops_per_s == round(1307.4 * TERA)
    assert mi300x.fp8_dense_flops_per_s == round(2614.9 * TERA)
    # Same page: "The theoretical aggregated peak memory bandwidth of the GPU is 5.3 TB per second."
    assert mi300x.memory_bandwidth_bytes_per_s == round(5.3 * TERA)
    # .../reference/gpu-arch-specs.html: "MI300X | CDNA3 | gfx942 | ... | VRAM (GiB) 192".
    assert mi300x.memory_bytes == 192 * GIB


@pytest.mark.parametrize(
    ("name", "bf16_tflops", "bandwidth_gbps", "memory_gb"),
    [
        # docs.cloud.google.com/tpu/docs/v5e: "Peak compute per chip (bf16) | 197 TFLOPs",
        # "HBM2 capacity and bandwidth | 16 GB, 819 GBps".
        ("tpu-v5e", 197, 819, 16),
        # cloud.google.com/tpu/docs/v5p-training: "Peak compute per chip (bf16) | 459 TFLOPs",
        # "HBM2e capacity and bandwidth | 95GB, 2765 GBps".
        ("tpu-v5p", 459, 2765, 95),
        # docs.cloud.google.com/tpu/docs/v6e: "Peak compute per chip (bf16) | 918 TFLOPs",
        # "HBM capacity per chip | 32 GB", "HBM bandwidth per chip | 1638 GBps".
        ("tpu-v6e", 918, 1638, 32),
    ],
)
def test_tpus_match_the_cloud_tpu_pages(name: str, bf16_tflops: int, bandwidth_gbps: int, memory_gb: int) -> None:
    tpu = accelerator(name)
    assert tpu.bf16_dense_flops_per_s == bf16_tflops * TERA
    assert tpu.memory_bandwidth_bytes_per_s == bandwidth_gbps * GIGA
    assert tpu.memory_bytes == memory_gb * GIB  # the module's convention: printed GB x 2**30
    assert tpu.fp8_dense_flops_per_s is None  # the pages give bf16 and int8 only


def test_ridge_point_worked_example() -> None:
    # MI300X: 1307.4e12 FLOP/s / 5.3e12 bytes/s = 246.68 FLOP per byte.
    assert accelerator("mi300x").ridge_flops_per_byte == pytest.approx(246.679, abs=1e-3)
    # TPU v6e: 918e12 / 1638e9 = 560.44 FLOP per byte.
    assert accelerator("tpu-v6e").ridge_flops_per_byte == pytest.approx(560.440, abs=1e-3)


def test_module_doctest() -> None:
    assert doctest.testmod(estimator.accelerators).failed == 0


def test_names_are_case_and_space_insensitive() -> None:
    assert accelerator("  MI300X ") is accelerator("mi300x")


@pytest.mark.parametrize(("typed", "suggestion"), [("mi300", "mi300x"), ("tpu-v5", "tpu-v5e"), ("tpuv6e", "tpu-v6e")])
def test_misspelt_name_gives_one_line_with_did_you_mean(typed: str, suggestion: str) -> None:
    with pytest.raises(EstimatorError) as caught:  # the CLI turns an EstimatorError into exit status 2
        accelerator(typed)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"unknown accelerator {typed!r}; did you mean ")
    assert suggestion in message.split("?")[0]
    assert message.endswith("use one of " + ", ".join(accelerator_names()))


def test_unlike_name_lists_the_valid_names_without_a_guess() -> None:
    names = "a100-40gb, a100-80gb, b200, b300, h100-pcie, h100-sxm, h200, l40s, mi300x, rtx-4090, rtx-5090, "
    with pytest.raises(EstimatorError, match=rf"^unknown accelerator 'zzz'; use one of {names}"):
        accelerator("zzz")


GOOD = """[toy-gpu]
display_name = "Toy GPU"
bf16_dense_flops_per_s = 1_000
memory_bandwidth_bytes_per_s = 10
memory_gb_as_printed = 1.5
memory_bytes = 1_610_612_736
source = "https://www.amd.com/toy"
note = "made up for the test"
"""


def test_loader_reads_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "accelerators.toml"
    path.write_text(GOOD)
    assert load_accelerators_from(path) == (
        Accelerator(
            "toy-gpu", "Toy GPU", 1000, None, 10, 1_610_612_736, "https://www.amd.com/toy", "made up for the test"
        ),
    )


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (("note = ", 'colour = "red"\nnote = '), "unknown key(s) colour"),
        (("bf16_dense_flops_per_s = 1_000", "bf16_dense_flops_per_s = 0"), "bf16_dense_flops_per_s = 0 must be"),
        (("memory_bandwidth_bytes_per_s = 10", "memory_bandwidth_bytes_per_s = -10"), "must be a positive integer"),
        (("memory_bandwidth_bytes_per_s = 10", "memory_bandwidth_bytes_per_s = 1.5e12"), "must be a positive integer"),
        (("memory_bandwidth_bytes_per_s = 10", "memory_bandwidth_bytes_per_s = true"), "must be a positive integer"),
        (("note = ", "fp8_dense_flops_per_s = 0\nnote = "), "fp8_dense_flops_per_s = 0 must be"),
        (("memory_gb_as_printed = 1.5", "memory_gb_as_printed = -1.5"), "memory_gb_as_printed = -1.5 must be"),
        (("memory_bytes = 1_610_612_736", "memory_bytes = 1_500_000_000"), "differs from memory_gb_as_printed"),
        (('note = "made up for the test"\n', ""), "lacks note"),
        (('source = "https://www.amd.com/toy"', 'source = "http://www.amd.com/toy"'), "must be an https:// URL"),
        (('display_name = "Toy GPU"', 'display_name = ""'), "display_name must be a non-empty string"),
        (("[toy-gpu]", "[Toy_GPU]"), "is not a lowercase-hyphenated name"),
    ],
)
def test_strict_loading_rejects_a_bad_file(tmp_path: Path, change: tuple[str, str], words: str) -> None:
    path = tmp_path / "accelerators.toml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(EstimatorError) as caught:
        load_accelerators_from(path)
    message = str(caught.value)
    assert "\n" not in message, message
    assert message.startswith(str(path)) and "[" in message and message.endswith("; fix the file"), message
    assert words in message, message


@pytest.mark.parametrize(("text", "words"), [("[toy", "not valid TOML"), ("", "names no accelerator")])
def test_loader_rejects_broken_or_empty_toml(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "accelerators.toml"
    path.write_text(text)
    with pytest.raises(EstimatorError, match=words) as caught:
        load_accelerators_from(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(EstimatorError, match=r"^cannot read .*; check the path$"):
        load_accelerators_from(tmp_path / "absent.toml")


def test_a_plain_lookup_imports_no_numerical_library() -> None:
    code = (
        "import sys; from estimator.accelerators import accelerator; accelerator('mi300x');"
        "print(sorted(m for m in ('numpy', 'pandas', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("name", "dense_bf16_tflops", "sparse_as_printed", "bandwidth_gbps", "memory_gb"),
    [
        # NVIDIA H100 datasheet (SXM): "BFLOAT16 Tensor Core 1,979 teraFLOPS*", "* With sparsity",
        # "GPU memory bandwidth 3.35TB/s", "GPU memory 80GB"; dense matrix 989.4 (Lockwood's table)
        ("h100-sxm", 989.4, 1979, 3350, 80),
        # (PCIe): "BFLOAT16 Tensor Core 1,513 teraFLOPS*", "2,000 GB/sec", "80GB"
        ("h100-pcie", 756.5, 1513, 2000, 80),
        # NVIDIA H200 (SXM): "BFLOAT16 Tensor Core 1,979 TFLOPS*", "GPU Memory Bandwidth 4.8TB/s", "141GB"
        ("h200", 989.4, 1979, 4800, 141),
        # NVIDIA A100 datasheet: "BFLOAT16 Tensor Core 312 TFLOPS | 624 TFLOPS*", 80GB: "2,039GB/s", 40GB: "1,555GB/s"
        ("a100-80gb", 312, 624, 2039, 80),
        ("a100-40gb", 312, 624, 1555, 40),
    ],
)
def test_nvidia_dense_is_half_the_datasheets_sparse_figure(
    name: str, dense_bf16_tflops: float, sparse_as_printed: int, bandwidth_gbps: int, memory_gb: int
) -> None:
    gpu = accelerator(name)
    assert gpu.bf16_dense_flops_per_s == round(dense_bf16_tflops * TERA)
    assert round(2 * gpu.bf16_dense_flops_per_s / TERA) == sparse_as_printed
    assert gpu.memory_bandwidth_bytes_per_s == bandwidth_gbps * GIGA
    assert gpu.memory_bytes == memory_gb * GIB

"""The information in a text as a range: Chinchilla's reference point (no floor), log2 V or a compressor's
bound as the ceiling, the user's measured rate or the text's own; full fine-tuning's capacity shared with
pretraining."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from estimator.information import compressed_sizes_bytes, estimated_tokens, information, read_sample, vocabulary_bits

from .test_cli import run

CHINCHILLA_BITS = 1.69 / math.log(2)  # 2.438


def _random_words(path: Path, words: int, vocabulary: int, seed: int = 7) -> float:
    """Write ``words`` words drawn uniformly from ``vocabulary`` distinct ones; return the entropy in bits."""
    rng = random.Random(seed)
    lexicon = [f"w{i:03d}" for i in range(vocabulary)]
    path.write_text(" ".join(rng.choice(lexicon) for _ in range(words)))
    return words * math.log2(vocabulary)


def test_a_compressor_never_beats_the_entropy_of_the_text(tmp_path: Path) -> None:
    """A file of 20,000 words drawn uniformly from 64 carries 120,000 bits; every compressor needs more."""
    entropy = _random_words(tmp_path / "t.txt", 20_000, 64)
    sizes = compressed_sizes_bytes((tmp_path / "t.txt").read_bytes())
    assert set(sizes) == {"lzma", "bz2", "zlib"}
    assert all(8 * size >= entropy for size in sizes.values())
    sample = read_sample(tmp_path / "t.txt", tokens=20_000)
    assert sample.compressed_bits_per_token == 8 * min(sizes.values()) / 20_000 >= math.log2(64)


def test_the_range_and_its_sources(tmp_path: Path) -> None:
    plain = information(128_256)  # Llama 3's vocabulary
    assert plain.low_bits_per_token == plain.point_bits_per_token == pytest.approx(CHINCHILLA_BITS)
    assert plain.ceiling_bits_per_token == vocabulary_bits(128_256) == pytest.approx(16.969, abs=5e-4)
    measured = information(128_256, given_bits_per_token=1.2)  # a model's loss below Chinchilla's reference
    assert (measured.low_bits_per_token, measured.point_bits_per_token) == (1.2, 1.2)
    _random_words(tmp_path / "t.txt", 5_000, 16)
    sample = read_sample(tmp_path / "t.txt", tokens=5_000)
    bounded = information(128_256, sample=sample)
    assert bounded.ceiling_bits_per_token == sample.compressed_bits_per_token < 16.969
    assert sample.best_compressor in bounded.ceiling_source
    assert estimated_tokens(40_000) == 10_000 and estimated_tokens(1) == 1


def test_capacity_gives_full_fine_tuning_no_headroom(capsys: pytest.CaptureFixture[str]) -> None:
    """Llama 3 70B at 2 bits/param holds 141.1 Gbit, below the 36.6 Tbit of its 15T tokens at 2.438 bits."""
    code, out, _ = run(capsys, "capacity", "--model", "llama3-70b", "--json")
    data = json.loads(out)
    rows = {r["method"]: r for r in data["methods"]}
    assert code == 0 and rows["full"]["capacity_shared_with_pretraining"] is True
    assert rows["full"]["headroom_capacity_to_information"] is None and rows["full"]["fill_tokens"] is None
    lora = rows["lora"]
    assert lora["headroom_capacity_to_information"] == pytest.approx(2 * 414_187_520 / (100_000 * CHINCHILLA_BITS))
    assert lora["headroom_at_information_ceiling"] == pytest.approx(2 * 414_187_520 / (100_000 * math.log2(128_256)))
    assert data["pretraining"]["information_bits"] == pytest.approx(15e12 * CHINCHILLA_BITS)
    _, text, _ = run(capsys, "capacity", "--model", "llama3-70b")
    full_row = next(line for line in text.splitlines() if line.startswith("full fine-tuning"))
    assert "shared" in full_row and "578,747x" not in text and "already full" in text


def test_text_sets_the_tokens_and_bounds_the_information(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    _random_words(path, 8_000, 32)
    code, out, _ = run(capsys, "capacity", "--model", "llama3-8b", "--text", str(path), "--json")
    data = json.loads(out)
    size = path.stat().st_size
    assert code == 0 and data["tokens"] == -(-size // 4) and data["text_sample"]["tokens_counted"] is False
    code, out, _ = run(capsys, "capacity", "-m", "llama3-8b", "--text", str(path), "--text-tokens", "8000", "--json")
    data = json.loads(out)
    assert data["tokens"] == 8_000 and data["text_bits_per_token_range"]["ceiling"] >= math.log2(32)


@pytest.mark.parametrize(
    ("make", "args", "needle"),
    [
        (None, ["--text", "missing.txt"], "no such file"),
        ("", ["--text", "{path}"], "is empty"),
        (b"\xff\xfe\x00bad", ["--text", "{path}"], "not UTF-8"),
        ("some words", ["--text", "{path}", "--tokens", "5k"], "--text sets the token count"),
        ("some words", ["--text", "{path}", "--text-tokens", "0"], "must be at least 1"),
        (None, ["--text-tokens", "10"], "counts the tokens of --text"),
    ],
)
def test_bad_text_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make: str | bytes | None, args: list[str], needle: str
) -> None:
    path = tmp_path / "t.txt"
    if isinstance(make, bytes):
        path.write_bytes(make)
    elif make is not None:
        path.write_text(make)
    args = [a.replace("{path}", str(path)).replace("missing.txt", str(tmp_path / "missing.txt")) for a in args]
    code, out, err = run(capsys, "capacity", "--model", "gpt2", *args)
    assert code == 2 and out == "" and needle in err and err.count("\n") == 1


def test_a_huge_text_is_refused_before_it_is_read(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    with path.open("wb") as f:
        f.truncate(17 * 2**20)  # sparse: no memory or disk spent
    code, _, err = run(capsys, "capacity", "--model", "gpt2", "--text", str(path))
    assert code == 2 and "more than 16,777,216" in err


def test_a_given_text_is_measured_by_its_compressor(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """With --text and no rate given, the text's information is its own measured rate: the smallest of lzma
    -9e, bz2 -9 and zlib -9 (computed here with the standard library) in bits, per token; 8,000 words drawn
    from 32 carry 5 bits each, and the measured rate is no lower."""
    import bz2
    import lzma
    import zlib

    path = tmp_path / "notes.txt"
    entropy = _random_words(path, 8_000, 32)
    data = path.read_bytes()
    smallest = min(len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)), len(bz2.compress(data, 9)),
                   len(zlib.compress(data, 9)))  # fmt: skip
    code, out, _ = run(capsys, "capacity", "-m", "llama3-8b", "--text", str(path), "--text-tokens", "8000", "--json")
    data_json = json.loads(out)
    rate = 8 * smallest / 8_000
    assert code == 0 and data_json["text_bits_per_token"] == rate >= entropy / 8_000 == 5
    assert data_json["text_bits_per_token_range"]["point_source"].startswith("measured: ")
    lora = next(r for r in data_json["methods"] if r["method"] == "lora")
    assert lora["headroom_capacity_to_information"] == pytest.approx(lora["capacity_bits"] / (8_000 * rate))
    code, out, _ = run(capsys, "capacity", "-m", "llama3-8b", "--text", str(path), "--text-bits-per-token", "1.5",
                       "--json")  # fmt: skip
    assert json.loads(out)["text_bits_per_token"] == 1.5  # the model's loss, where given, comes first

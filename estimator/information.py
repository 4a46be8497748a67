"""How much information a text carries, as a range of reference points with their sources rather than
one borrowed number.

Per token of text, in bits:

    low      h_E = E / ln 2 = 1.69 nats / ln 2 = 2.438      (a reference point, not a floor: Chinchilla's
             irreducible loss, the entropy a perfect model of MassiveText still faces in Chinchilla's
             tokenizer; typical text, not this text: another tokenizer, or a text the model already knows,
             can cost fewer bits)
    ceiling  min(log2 V, 8 · C(text) / T)                    (no token of a V-word vocabulary carries more than
             log2 V bits, Llama 3's 128,256: 16.969; a compressor's output C, in bytes, bounds any text's
             information from above: the smallest of lzma -9e, bz2 -9 and zlib -9 over the file)
    point    the user's measured rate (the model's loss on the text, in bits per token); else, where the
             text is given, its measured rate: a compressor's bits per byte × the text's bytes per token
             (= 8 · C / T, at most log2 V; an upper bound on this text's information, not a typical
             text's); else the low reference point

Tokens of a ``--text`` file are the user's count (``--text-tokens``, from their tokenizer), else estimated
as UTF-8 bytes / 4 (the rule of thumb for English under ~100k-word BPE vocabularies), said so wherever
they are shown. Pure functions except :func:`read_sample`, which reads the file.
"""

from __future__ import annotations

import bz2
import lzma
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

from estimator.constants import TEXT_NATS_PER_TOKEN, nats_to_bits
from estimator.errors import EstimatorError
from estimator.units import BITS_PER_BYTE

MAX_SAMPLE_BYTES = 16 * 2**20  # lzma -9e runs at about 1 MB/s: 16 MiB take seconds, not minutes
BYTES_PER_TOKEN_ESTIMATE = 4


@dataclass(frozen=True)
class Sample:
    """A text file's size, its tokens (counted by the user or estimated), and its compressed sizes."""

    path: str
    size_bytes: int
    tokens: int
    tokens_counted: bool  # True: the user's count (--text-tokens); False: estimated as bytes / 4
    compressed_bytes: dict[str, int]

    @property
    def best_compressor(self) -> str:
        return min(self.compressed_bytes, key=lambda name: self.compressed_bytes[name])

    @property
    def compressed_bits_per_token(self) -> float:
        """8 · C / T: an upper bound on the text's information per token."""
        return self.compressed_bytes[self.best_compressor] * BITS_PER_BYTE / self.tokens

    @property
    def compressed_bits_per_byte(self) -> float:
        return self.compressed_bytes[self.best_compressor] * BITS_PER_BYTE / self.size_bytes


def compressed_sizes_bytes(data: bytes) -> dict[str, int]:
    """Bytes of ``data`` after lzma (preset 9, extreme), bz2 -9 and zlib -9, headers included (so each is
    a valid upper bound on the information: the file can be rebuilt from it)."""
    return {
        "lzma": len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)),
        "bz2": len(bz2.compress(data, 9)),
        "zlib": len(zlib.compress(data, 9)),
    }


def estimated_tokens(size_bytes: int) -> int:
    """⌈bytes / 4⌉, at least 1: the rule of thumb for English text (a 40,000-byte essay: 10,000 tokens)."""
    return max(1, -(-size_bytes // BYTES_PER_TOKEN_ESTIMATE))


def read_sample(path: Path, tokens: int | None = None) -> Sample:
    """Read ``path`` (UTF-8 text, at most 16 MiB) and compress it; ``tokens``: the user's own count."""
    if not path.is_file():
        raise EstimatorError(f"{path}: no such file; give --text a text file")
    size = path.stat().st_size
    if size == 0:
        raise EstimatorError(f"{path} is empty; give --text a file with the text to learn")
    if size > MAX_SAMPLE_BYTES:
        raise EstimatorError(f"{path} has {size:,} bytes, more than {MAX_SAMPLE_BYTES:,}; give a sample of the text")
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EstimatorError(
            f"{path} is not UTF-8 text (byte {error.start:,}); convert it or give a text file"
        ) from None
    if tokens is not None and tokens < 1:
        raise EstimatorError(f"--text-tokens {tokens} must be at least 1; give your tokenizer's count")
    count = tokens if tokens is not None else estimated_tokens(size)
    return Sample(str(path), size, count, tokens is not None, compressed_sizes_bytes(data))


@dataclass(frozen=True)
class Information:
    """Information per token of text: the rate used (``point``) and the range around it, with sources.

    ``low_bits_per_token`` is a reference point (Chinchilla's irreducible loss, or the user's lower rate),
    not a lower bound; ``ceiling_bits_per_token`` is a bound (log2 V, or a compressor's output)."""

    point_bits_per_token: float
    low_bits_per_token: float
    ceiling_bits_per_token: float
    point_source: str
    ceiling_source: str

    def bits(self, tokens: int) -> tuple[float, float, float]:
        """(low, point, ceiling) bits of information in ``tokens`` tokens."""
        return (tokens * self.low_bits_per_token, tokens * self.point_bits_per_token,
                tokens * self.ceiling_bits_per_token)  # fmt: skip


def vocabulary_bits(vocab_size: int) -> float:
    """log2 V: the most one token can carry (Llama 3, V = 128,256: 16.969 bits)."""
    return math.log2(vocab_size)


def information(
    vocab_size: int, given_bits_per_token: float | None = None, sample: Sample | None = None
) -> Information:
    """The range for a model's vocabulary, the user's measured rate if any, and a text sample if any."""
    reference = nats_to_bits(TEXT_NATS_PER_TOKEN.value)
    ceiling, ceiling_source = vocabulary_bits(vocab_size), f"log2 of the {vocab_size:,}-token vocabulary"
    if sample is not None and sample.compressed_bits_per_token < ceiling:
        ceiling = sample.compressed_bits_per_token
        ceiling_source = (
            f"{sample.best_compressor} compresses the text to {sample.compressed_bits_per_byte:.3f} bits/byte"
        )
    if given_bits_per_token is not None:
        point, source = given_bits_per_token, "given (e.g. the model's loss on the text)"
    elif sample is not None:  # this text's own measured rate: what it costs a compressor, per token
        point = ceiling
        source = (
            f"measured: {sample.best_compressor} compresses the text to {sample.compressed_bits_per_byte:.3f} "
            f"bits/byte × {sample.size_bytes / sample.tokens:.2f} bytes per token"
            + (", capped at log2 V" if sample.compressed_bits_per_token > ceiling else "")
            + ", an upper bound on its information"
        )
    else:
        point, source = reference, f"Chinchilla's irreducible loss, {TEXT_NATS_PER_TOKEN.value} nats, a reference point"
    return Information(point, min(reference, point), max(ceiling, point), source, ceiling_source)

"""What every cache-shrinking method shares: the :class:`KVMethod` type and the helpers its kinds use.

Every method is one fold over the model's own layout (as :mod:`estimator.kv`), so windows, latent
attention and recurrent states stay exact:

    bits(T) = Σ_g |g| · (b'_g · h'_g(T) + s_g) + F,    bytes(T) = ⌈bits(T) / 8⌉

where b'_g is the method's bits per held token of one layer of group g, h'_g(T) the tokens that layer
keeps (min(T, w) under a window of w; an eviction keeps ⌈f · min(T, w)⌉ of them), s_g the group's fixed
state (recurrent and convolution states, kept as the plain cache keeps them) and F the method's own fixed
bits (NVFP4's per-tensor scales, a cartridge's trained cache). The bytes are computed; the quality each
paper states is cited in :attr:`KVMethod.paper`, never computed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from fractions import Fraction
from typing import TYPE_CHECKING, ClassVar

from estimator.layout.mixers import Mixer

if TYPE_CHECKING:
    from estimator.layout.formats import KVFormat
    from estimator.query import Query


@dataclass(frozen=True)
class KVMethod:
    """One way to hold the text in context for less: subclasses set ``name``, ``kind``, ``paper``, ``costs``."""

    name: ClassVar[str]
    kind: ClassVar[str]  # quantisation, conversion, eviction, trained cache
    paper: ClassVar[str]  # the quality the paper states, with source, model, benchmark, conditions
    costs: ClassVar[str]  # what it costs besides bytes

    def layer_bits(self, mixer: Mixer, fmt: KVFormat) -> Fraction:
        """Bits one layer keeps per held token (default: the plain cache's, in the query's format)."""
        return Fraction(mixer.bits_per_token(fmt))

    def kept_tokens(self, mixer: Mixer, tokens: int, fmt: KVFormat) -> int:
        """Tokens one layer keeps after T tokens (default: what the plain cache holds, T or min(T, w))."""
        return mixer.held_tokens(tokens, fmt)

    def fixed_bits(self, q: Query) -> int:
        """Bits of the method's own that do not grow with the text (none by default)."""
        return 0

    def check(self, q: Query) -> None:
        """Refuse a model the method cannot apply to, in one line."""

    @property
    def text(self) -> str:
        """The method as ``--kv-method`` spells it: ``turboquant:bits=3.5``."""
        values = ";".join(f"{f.name}={number(getattr(self, f.name))}" for f in fields(self))
        return f"{self.name}:{values}" if values else self.name

    def label(self) -> str:
        raise NotImplementedError


def bits_of_elements(mixer: Mixer, fmt: KVFormat, bits: Fraction) -> Fraction:
    """Σ count · length · b over the vectors a layer caches per token (the plain cache's vectors)."""
    return sum((count * length * bits for count, length in mixer.vectors(fmt)), Fraction(0))


def number(value: Fraction | int) -> str:
    """3.5, 20, 0.3: a number as a short decimal where that is exact, else as a fraction (1/3)."""
    if isinstance(value, int):
        return str(value)
    short = f"{float(value):g}"
    return short if Fraction(short) == value else str(value)

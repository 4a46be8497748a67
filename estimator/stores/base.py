"""What every way of storing new text shares: the :class:`Store` type and the size it reports. The names of
the ways (:class:`~estimator.query.vocabulary.Method`) belong to the question, in :mod:`estimator.query`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from estimator.errors import EstimatorError
from estimator.query.vocabulary import LoReFT, Method
from estimator.units import bits_to_bytes

if TYPE_CHECKING:
    from estimator.query.model import Query
    from estimator.specs import ModelSpec
    from estimator.stores.peft_configs import PeftConfig


@dataclass(frozen=True, eq=False)  # compared by identity: a record, never a key
class Size:
    """What a store holds for one query: its trained parameters (None: not trained), its bytes, and
    the tokens those bytes are spread over (the text's T, or the pretraining tokens)."""

    params: int | None
    bytes: int
    tokens: int


@dataclass(frozen=True, eq=False)
class Footprint:
    """A trained store's three sizes: trained (what the optimiser updates), saved (what ``save_pretrained``
    writes with the store's defaults) and minimal (what must be kept when seeded or derived parts are
    regenerated); elements, and bytes in the adapter dtype (integer indices at their own width)."""

    params: int
    bytes: int
    saved_params: int
    saved_bytes: int
    minimal_params: int
    minimal_bytes: int


class Store:
    """One way of storing the text. Subclasses set ``method`` and ``trained`` and answer, for a query:
    ``params`` (trained parameters), ``size``, ``label`` (the table's name for the row), ``assumption``
    (one sentence for the assumptions), and ``peft_config`` (what peft builds, for validation)."""

    method: ClassVar[Method]
    trained: ClassVar[bool] = True  # trained once: a crossover with the cache and a knowledge capacity

    def params(self, q: Query) -> int | None:
        raise NotImplementedError

    def size(self, q: Query, kv_bytes: int) -> Size | None:
        """Trained stores: params · b / 8 bytes in the adapter dtype, over the T tokens of the text."""
        params = self.params(q)
        assert params is not None
        return Size(params, bits_to_bytes(params * q.adapter_dtype.bits), q.tokens)

    def footprint(self, q: Query) -> Footprint | None:
        """Trained, saved and minimal sizes; for most stores all three are the trained parameters."""
        if not self.trained:
            return None
        params = self.params(q)
        assert params is not None
        size = bits_to_bytes(params * q.adapter_dtype.bits)
        return Footprint(params, size, params, size, params, size)

    def tensors(self, q: Query) -> tuple[int, ...]:
        """Elements of each tensor training updates (what the optimizer keeps a state for), for the fine-tuning
        memory; refused in one line by a store whose training is not modelled there."""
        raise EstimatorError(
            f"fine-tuning memory of {self.method.value} is not modelled; use lora, dora or full (--way)"
        )

    def label(self, q: Query) -> str:
        raise NotImplementedError

    def assumption(self, q: Query) -> str | None:
        return None

    def peft_config(self, q: Query) -> PeftConfig | None:
        return None


def loreft_params(spec: ModelSpec, loreft: LoReFT) -> int:
    """LoReFT parameters: interventions × (2 · r · d + r), where d = hidden_size.

    Llama 2 7B, commonsense recipe (r = 8, 32 layers, tied): 32 × (2 · 8 · 4,096 + 8) = 2,097,408.
    """
    return loreft.interventions(spec) * (2 * loreft.rank * spec.hidden_size + loreft.rank)

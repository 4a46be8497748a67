"""Ways of storing the text, in one registry: :data:`STORES` maps each :class:`Method` to its store.

To add a way of storing text: write its :class:`~estimator.stores.base.Store` subclass in
:mod:`estimator.stores.kinds` (or a module of its own), add a
:class:`~estimator.query.vocabulary.Method` member and register it here; the table, JSON, CSV, sweep,
capacity and validation rows follow (see CONTRIBUTING.md).
"""

from collections.abc import Iterator, Mapping

from estimator.query.vocabulary import Method
from estimator.stores.base import Size, Store
from estimator.stores.kinds import IA3, DoRA, Full, KVCache, LoRA, LoReFTStore, Prefix, Pretraining, Prompt


class Registry(Mapping[Method, Store]):
    """Each :class:`Method`'s store: the nine core rows at hand, peft's other tuners
    (:mod:`estimator.stores.tuner_kinds`) imported the first time one is asked for, so that a plain query
    does not load them."""

    def __init__(self, core: tuple[Store, ...]) -> None:
        self._core = {store.method: store for store in core}
        self._all: dict[Method, Store] | None = None

    def _everything(self) -> dict[Method, Store]:
        if self._all is None:
            from estimator.stores.tuner_kinds import TUNERS

            self._all = {**self._core, **{tuner.method: tuner for tuner in TUNERS}}
        return self._all

    def __getitem__(self, method: Method) -> Store:
        return self._core[method] if method in self._core else self._everything()[method]

    def __iter__(self) -> Iterator[Method]:
        return iter(self._everything())

    def __len__(self) -> int:
        return len(self._everything())


STORES = Registry((KVCache(), LoRA(), DoRA(), IA3(), LoReFTStore(), Prefix(), Prompt(), Full(), Pretraining()))

__all__ = ["STORES", "Size", "Store"]

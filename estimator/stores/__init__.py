"""Ways of storing the text, in one registry: :data:`STORES` maps each :class:`Method` to its store.

To add a way of storing text: write its :class:`~estimator.stores.base.Store` subclass in
:mod:`estimator.stores.kinds` (or a module of its own), add a :class:`Method` member and register it
here; the table, JSON, CSV, sweep, capacity and validation rows follow (see CONTRIBUTING.md).
"""

from estimator.stores.base import LoReFT, Method, Size, Store, parse_layers, parse_methods, parse_positions
from estimator.stores.kinds import IA3, DoRA, Full, KVCache, LoRA, LoReFTStore, Prefix, Pretraining, Prompt
from estimator.stores.tuner_kinds import TUNERS

STORES: dict[Method, Store] = {
    store.method: store
    for store in (KVCache(), LoRA(), DoRA(), IA3(), LoReFTStore(), Prefix(), Prompt(), Full(), Pretraining(), *TUNERS)
}
TRAINED = tuple(method for method, store in STORES.items() if store.trained)

__all__ = [
    "STORES",
    "TRAINED",
    "LoReFT",
    "Method",
    "Size",
    "Store",
    "parse_layers",
    "parse_methods",
    "parse_positions",
]

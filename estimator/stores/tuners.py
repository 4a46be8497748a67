"""peft's other tuners as ways of storing the text: each a :class:`PeftTuner`, sized three ways.

- **trained**: the parameters the optimiser updates (peft's trainable count, exactly);
- **saved**: the elements ``save_pretrained`` writes to ``adapter_model.safetensors`` with the tuner's
  defaults (VeRA's shared random projections, TinyLoRA's SVD factors and projections);
- **minimal**: what must be kept when seeded parts are regenerated from their seed and derived parts from
  the base model (VB-LoRA: its bank and the top-k weights and indices, as ``save_only_topk_weights``).

``--rank`` is the tuner's rank where it has one; every other knob that sizes it keeps peft's default and
can be set with ``--tuner-option name=value`` (:data:`KNOBS` lists them); each is printed in the assumptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from estimator.errors import MethodNotApplicableError
from estimator.families import conventions_of
from estimator.stores.base import Footprint, Size, Store
from estimator.units import bits_to_bytes, format_bytes

if TYPE_CHECKING:
    from estimator.layout import LinearMap
    from estimator.query import Query
    from estimator.stores.peft_configs import PeftConfig

Knob = int | float | bool | str
TunerOptions = tuple[tuple[str, Knob], ...]


@dataclass(frozen=True)
class Elements:
    """A tuner's elements: ``trained``, ``saved`` and ``minimal`` in the adapter dtype, and integer
    indices beside them (``saved_index`` and ``minimal_index`` elements of ``index_bits`` each)."""

    trained: int
    saved: int
    minimal: int
    saved_index: int = 0
    minimal_index: int = 0
    index_bits: int = 0

    def footprint(self, bits: int) -> Footprint:
        """Bytes of each at ``bits`` per float element and ``index_bits`` per index; params count both."""

        def size(floats: int, indices: int) -> int:
            return bits_to_bytes(floats * bits + indices * self.index_bits)

        return Footprint(
            self.trained,
            size(self.trained, 0),
            self.saved + self.saved_index,
            size(self.saved, self.saved_index),
            self.minimal + self.minimal_index,
            size(self.minimal, self.minimal_index),
        )


class PeftTuner(Store):
    """A peft tuner on the linear maps of ``--targets``. Subclasses set ``method``, ``title``, ``peft_kind``,
    ``rank_knob`` (peft's name of the rank, None without one), ``knobs`` (peft's defaults of the other knobs
    that size it) and answer :meth:`elements`."""

    title: ClassVar[str]
    peft_kind: ClassVar[str]
    rank_knob: ClassVar[str | None] = "r"
    knobs: ClassVar[dict[str, Knob]] = {}
    formula: ClassVar[str] = ""
    conv1d: ClassVar[bool] = True  # whether peft's tuner adapts GPT-2's Conv1D (LyCORIS's LoKr and LoHa do not)
    meta: ClassVar[bool] = True  # whether peft builds it on the meta device (BOFT, SHiRA, UniLoRA read values)

    def elements(self, q: Query, maps: tuple[LinearMap, ...], knobs: dict[str, Knob]) -> Elements:
        raise NotImplementedError

    def settings(self, q: Query) -> dict[str, Knob]:
        """peft's defaults, with ``--tuner-option`` values given for this tuner's knobs."""
        given = dict(q.tuner_options)
        return {name: given.get(name, default) for name, default in self.knobs.items()}

    def maps(self, q: Query) -> tuple[LinearMap, ...]:
        """The targeted ``nn.Linear`` maps (peft's tuners other than LoRA adapt modules, not bare tensors)."""
        from estimator.stores.kinds import targets_of

        linears = targets_of(q).linears
        bare = [m.short_name for m in linears if not m.module]
        if bare:
            raise MethodNotApplicableError(
                f"peft's {self.title} adapts nn.Linear modules, not fused expert tensors "
                f"({', '.join(dict.fromkeys(bare))}); use --experts per-expert or none"
            )
        if not self.conv1d and conventions_of(q.spec.model_type).transformers.conv1d:  # GPT-2's maps
            raise MethodNotApplicableError(
                f"peft's {self.title} adapts nn.Linear and convolutions, not {q.spec.model_type}'s Conv1D maps"
            )
        return linears

    def counted(self, q: Query) -> Elements:
        return self.elements(q, self.maps(q), self.settings(q))

    def params(self, q: Query) -> int:
        return self.counted(q).trained

    def footprint(self, q: Query) -> Footprint:
        return self.counted(q).footprint(q.adapter_dtype.bits)

    def size(self, q: Query, kv_bytes: int) -> Size:
        """The trained parameters' bytes (saved and minimal: :meth:`footprint`, in the assumptions and JSON)."""
        fp = self.footprint(q)
        return Size(fp.params, fp.bytes, q.tokens)

    def label(self, q: Query) -> str:
        from estimator.stores.kinds import targets_of

        rank = f" r={q.rank}" if self.rank_knob else ""
        return f"{self.title}{rank}, {targets_of(q).described} ({q.adapter_dtype.value})"

    def assumption(self, q: Query) -> str:
        from estimator.kv import kv_cache_bytes

        fp = self.footprint(q)
        kv = kv_cache_bytes(q.spec, q.tokens, q.kv)
        settings = ", ".join(f"{name}={value}" for name, value in self.settings(q).items())
        rank = f"{self.rank_knob}={q.rank} (--rank)" if self.rank_knob else ""
        knobs = ", ".join(part for part in (rank, settings) if part) or "none"

        def part(what: str, params: int, size: int) -> str:
            ratio = f"KV ÷ this {kv / size:,.1f}x" if size else "nothing"
            return f"{what} {params:,} elements, {format_bytes(size)} ({ratio})"

        return (
            f"{self.title}: {self.formula} peft's {self.peft_kind}: {knobs}. "
            + "; ".join(
                (
                    part("trained", fp.params, fp.bytes),
                    part("saved", fp.saved_params, fp.saved_bytes),
                    part("minimal", fp.minimal_params, fp.minimal_bytes),
                )
            )
            + "."
        )

    def peft_config(self, q: Query) -> PeftConfig:
        from estimator.stores.kinds import peft_target_modules, targets_of
        from estimator.stores.peft_configs import PeftConfig

        kwargs: dict[str, object] = {"target_modules": peft_target_modules(targets_of(q), q.spec)}
        if self.rank_knob:
            kwargs[self.rank_knob] = q.rank
        kwargs.update(self.settings(q))
        return PeftConfig(self.peft_kind, kwargs)

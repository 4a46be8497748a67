"""``estimate capacity`` and ``estimate constants`` as reports: each trained store's knowledge capacity against
the information in the text (:class:`CapacityReport`, with the assumptions that make them reference points), and
the empirical constants behind them with their sources (:class:`ConstantsReport`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from estimator.present.report import BLANK, Text, markdown_table, pre, text_markdown
from estimator.query.vocabulary import Method

if TYPE_CHECKING:
    from estimator.capacity import Capacity, Exposures

HEADERS = ["store", "parameters", "capacity (bits)", "capacity (SI)", "÷ information", "÷ at ceiling",
           "full at (tokens)"]  # fmt: skip


def capacity_assumptions(result: Capacity, exposures: Exposures, given: bool) -> list[str]:
    """What the capacity answer assumes; ``given``: the bits per parameter came from --bits-per-param."""
    from estimator.constants import KNOWLEDGE_BITS_PER_PARAM, PHYSICS_3_3, TEXT_NATS_PER_TOKEN

    source = (
        "given by --bits-per-param" if given else f"{PHYSICS_3_3}, for facts seen about {int(exposures.value):,} times"
    )
    words = [
        f"Knowledge capacity: {result.bits_per_param:g} bits per trained parameter ({source}). The paper measured "
        "whole models trained from scratch on synthetic biographies; applying it to adapter parameters is an "
        f"assumption, an upper bound on what they can hold ({KNOWLEDGE_BITS_PER_PARAM.value:g} bits needs ~1,000 "
        "exposures, 1 bit at 100, 0.7 for int4 weights).",
    ]
    rate = result.information_range
    assert rate is not None  # the CLI always gives the range
    words.append(
        f"Information in the text: {result.text_bits_per_token:.3f} bits per token ({rate.point_source}); the "
        f"reference points run from {rate.low_bits_per_token:.3f} (Chinchilla's irreducible loss E = "
        f"{TEXT_NATS_PER_TOKEN.value} nats, {TEXT_NATS_PER_TOKEN.source}: the entropy a perfect model of its "
        "training text still faces, in its own tokenizer; typical text, not what this text costs this model, and "
        "no floor: another tokenizer, or a text the model already knows, costs fewer bits) to "
        f"{rate.ceiling_bits_per_token:.3f} ({rate.ceiling_source}, a bound). Give the model's loss on your text "
        "with --text-bits-per-token, and the text with --text."
    )
    words.append(
        "Capacity and information are different quantities: capacity counts bits of facts a model can be made to "
        "state (Allen-Zhu & Li's extractable knowledge), information the entropy of the text's tokens. Their "
        "ratio (÷ information) and the tokens that would fill a store are reference points for scale, not "
        "predictions of what a store keeps."
    )
    if result.sample is not None:
        sample = result.sample
        counted = "by your tokenizer (--text-tokens)" if sample.tokens_counted else "estimated as bytes / 4"
        sizes = ", ".join(f"{name} {size:,}" for name, size in sample.compressed_bytes.items())
        words.append(
            f"Text: {sample.path}, {sample.size_bytes:,} bytes, {sample.tokens:,} tokens {counted}; compressed "
            f"bytes {sizes}: the smallest bounds its information from above."
        )
    if result.row(Method.full) is not None:
        words.append(full_finetuning_words(result))
    words.append("Capacity is information the store could hold; what training actually puts there is not modelled.")
    return words


def full_finetuning_words(result: Capacity) -> str:
    """Why full fine-tuning gets no headroom: its weights are the pretrained ones, already full."""
    est = result.est
    held = result.bits_per_param * est.params
    if result.pretraining_information_bits is None:
        return (
            f"Full fine-tuning writes into the pretrained weights: their {held:,.0f} bits of capacity already hold "
            "what pretraining taught, so new facts displace old ones; no headroom is given for it."
        )
    seen = (
        f"the {result.pretraining_information_bits:,.0f} bits of their {est.pretraining_tokens:,} pretraining tokens "
        f"at {result.text_bits_per_token:.3f} bits each"
    )
    if held < result.pretraining_information_bits:
        return (
            f"Full fine-tuning writes into the pretrained weights, whose {held:,.0f} bits of capacity are below "
            f"{seen}: by these constants they are already full, so new facts displace old ones and no headroom is "
            "given for it (its capacity is a bound shared with all the model knows)."
        )
    return (
        f"Full fine-tuning writes into the pretrained weights, whose {held:,.0f} bits of capacity exceed {seen}; "
        "some may be free, but how much of it pretraining used is unknown, so no headroom is given for it."
    )


@dataclass(frozen=True)
class CapacityReport:
    """``result``'s answer; ``exposures`` and ``given`` (--bits-per-param was given) name the capacity's source."""

    result: Capacity
    exposures: Exposures
    given: bool = False

    def assumptions(self) -> list[str]:
        return capacity_assumptions(self.result, self.exposures, self.given)

    def record(self) -> dict[str, Any]:
        from estimator import __version__

        return {"estimator_version": __version__, **self.result.to_dict(), "assumptions": self.assumptions()}

    def rows(self) -> list[list[object]]:
        """One row per trained store: the ``methods`` of the record (blank for none)."""
        methods = self.result.to_dict()["methods"]
        header = list(methods[0]) if methods else ["method"]
        return [header, *[["" if m[k] is None else m[k] for k in header] for m in methods]]

    def _cells(self) -> list[list[str]]:
        from estimator.present.tables import format_ratio, method_label
        from estimator.units import format_bytes

        return [
            [
                method_label(self.result.est, r.method),
                f"{r.params:,}",
                f"{r.capacity_bits:,.0f}",
                format_bytes(r.capacity_bits / 8),
                *(
                    "shared" if r.shared else "—" if ratio is None else format_ratio(ratio)
                    for ratio in (r.headroom, r.headroom_at_ceiling)
                ),
                "—" if r.fill_tokens is None else f"{r.fill_tokens:,}",
            ]
            for r in self.result.rows
        ]

    def _head(self) -> list[Text]:
        from estimator.units import format_bytes

        result = self.result
        est, rate = result.est, result.information_range
        assert rate is not None
        low, point, high = rate.bits(est.tokens)
        return [
            Text(f"{est.spec.display_name} ({est.spec.name}): knowledge capacity against the information in "
                 f"{est.tokens:,} tokens of text (reference points: different quantities, see Assumptions)"),
            Text(f"Information: {est.tokens:,} tokens × {result.text_bits_per_token:.3f} bits = {point:,.0f} bits "
                 f"({format_bytes(point / 8)}); reference points {low:,.0f} to {high:,.0f} bits "
                 f"({rate.low_bits_per_token:.3f} to {rate.ceiling_bits_per_token:.3f} bits per token)"),
            BLANK,
        ]  # fmt: skip

    def _notes(self) -> list[Text]:
        """Under the table: full fine-tuning's shared capacity, the cache's redundancy, pretraining's rates."""
        from estimator.units import format_number, format_tokens_short

        result, notes = self.result, []
        est = result.est
        if result.row(Method.full) is not None:
            notes.append("shared: full fine-tuning's capacity is the pretrained weights', already in use (see "
                         "Assumptions).")  # fmt: skip
        if est.holds_all_tokens:
            notes.append(f"KV cache: {format_number(result.kv_stored_bits_per_token)} stored bits per token for "
                         f"{result.text_bits_per_token:.3f} bits of information, {result.kv_redundancy:,.0f} stored "
                         "bits per bit.")  # fmt: skip
        if result.pretraining_capacity_bits_per_token is not None and est.pretraining_tokens is not None:
            notes.append(f"Pretraining: {result.pretraining_weight_bits_per_token:.3g} bits of "
                         f"{est.weights_dtype.value} weights ({est.pretraining_bytes_per_token:.3g} bytes) per "
                         "pretraining token; knowledge capacity "
                         f"{result.pretraining_capacity_bits_per_token:.3g} bits per pretraining token "
                         f"({result.bits_per_param:g} bits per parameter over "
                         f"{format_tokens_short(est.pretraining_tokens)} tokens).")  # fmt: skip
        assumptions = [Text(line, bullet="- ") for line in self.assumptions()]
        return [BLANK, *(Text(n) for n in notes), BLANK, Text("Assumptions:"), *assumptions]

    def text(self) -> list[Text]:
        from estimator.present.tables import format_table

        return [*self._head(), pre(format_table(HEADERS, self._cells(), right={1, 2, 3, 4, 5, 6})), *self._notes()]

    def markdown(self) -> str:
        return text_markdown([*self._head(), Text(markdown_table([HEADERS, *self._cells()])), *self._notes()])


@dataclass(frozen=True)
class ConstantsReport:
    """The empirical constants (:data:`estimator.constants.CONSTANTS`): value, unit, source, conditions, option."""

    def record(self) -> list[dict[str, Any]]:
        from estimator.constants import CONSTANTS

        return [asdict(c) for c in CONSTANTS]

    def rows(self) -> list[list[object]]:
        records = self.record()
        return [list(records[0]), *[list(r.values()) for r in records]]

    def _table(self) -> list[list[str]]:
        from estimator.constants import CONSTANTS

        return [["constant", "value", "unit", "override"], *[[c.name, f"{c.value:g}", c.unit, c.option]
                                                              for c in CONSTANTS]]  # fmt: skip

    def _sources(self) -> list[Text]:
        from estimator.constants import CONSTANTS

        return [Text(f"{c.name}: {c.conditions}. Source: {c.source}.", bullet="- ") for c in CONSTANTS]

    def text(self) -> list[Text]:
        from estimator.present.tables import format_table

        header, *body = self._table()
        return [pre(format_table(header, body, right={1})), BLANK, *self._sources()]

    def markdown(self) -> str:
        return text_markdown([Text(markdown_table(self._table(), right_from=1)), *self._sources()])

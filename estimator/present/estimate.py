"""The main query's answer as a :class:`~estimator.present.report.Report`: the headline, the table of every way
of storing the text, the crossover and parity, and the assumptions; the same words for the CLI and the page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from estimator.present.report import BLANK, Text, markdown_table, pre, text_markdown

if TYPE_CHECKING:
    from estimator.checkpoint.crosscheck import CrossCheck
    from estimator.compare import Estimate


@dataclass(frozen=True)
class EstimateReport:
    """``est``'s answer; ``check``: the cross-check of a local checkpoint's tensors with the spec (None: not
    read from a folder or a GGUF file)."""

    est: Estimate
    check: CrossCheck | None = None

    def record(self) -> dict[str, Any]:
        from estimator.present.records import estimate_record
        from estimator.present.words import assumptions

        data = estimate_record(self.est)
        data["assumptions"] = assumptions(self.est)
        if self.check is not None:
            data["checkpoint"] = self.check.record()
        return data

    def rows(self) -> list[list[object]]:
        from estimator.present.tables import csv_rows

        return csv_rows(self.est)

    def _summary(self) -> tuple[list[Text], list[Text]]:
        """(what comes before the table: the model and the headline; after it: the crossover, and what the
        cache holds or the LoRA rank that holds as many bytes)."""
        from estimator.present.words import crossover_line, headline_line, holding_line, model_line, parity_line

        est = self.est
        after = holding_line(est) or parity_line(est)
        return [Text(model_line(est)), Text(headline_line(est)), BLANK], [Text(crossover_line(est)), Text(after)]

    def text(self) -> list[Text]:
        from estimator.present.tables import estimate_table

        head, tail = self._summary()
        return [*head, pre(estimate_table(self.est)), BLANK, *tail, *self._after()]

    def _after(self) -> list[Text]:
        from estimator.present.words import assumptions

        est = self.est
        blocks = [Text(self.check.line())] if self.check is not None else []
        if est.kv_method_rows and est.kv_method_rows[0].against:
            from estimator.present import frontier

            blocks += [BLANK, Text(frontier.against_caption(est)), pre(frontier.against_table(est))]
        return [*blocks, BLANK, Text("Assumptions:"), *(Text(line, bullet="- ") for line in assumptions(est))]

    def markdown(self) -> str:
        from estimator.present.tables import TABLE_HEADERS, table_rows

        head, tail = self._summary()
        table = markdown_table([TABLE_HEADERS, *(cells for _, cells in table_rows(self.est))])
        return text_markdown([*head, Text(table), BLANK, *tail, *self._after()])

"""`estimate validate`'s answer as a :class:`~estimator.present.report.Report`: for each model, every quantity
the formulas predict beside what transformers and peft measured (✔ equal, ✔* a stated convention explains the
difference exactly, ✗ differs), how it was measured, and the versions measured with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from estimator.present.report import BLANK, Text, markdown_table, pre, text_markdown

if TYPE_CHECKING:
    from estimator.validate.report import Validation

MARKS = {"ok": "✔", "differs": "✗", "explained": "✔*"}
HEADERS = ["quantity", "estimate", "measured", "difference", ""]


def _shown(value: object) -> str:
    from estimator.units import format_number

    return format_number(value) if isinstance(value, int | float) else str(value)


@dataclass(frozen=True)
class ValidationReport:
    """``results``: one :class:`~estimator.validate.report.Validation` per model, all measured with the same
    versions; ``peak_bytes``: the peak resident memory of the process that measured them."""

    results: list[Validation]
    peak_bytes: int

    def record(self) -> dict[str, Any]:
        """The versions measured with, and every check of every model."""
        results = self.results
        versions = results[0].versions
        return {
            "versions": versions.installed,
            "tested_versions": versions.tested,
            "outside_tested_versions": list(versions.outside),
            "versions_note": versions.line(),
            "ok": all(r.ok for r in results),
            "seconds": sum(r.seconds for r in results),
            "peak_rss_bytes": self.peak_bytes,
            "models": [
                {
                    "name": r.spec.name,
                    "display_name": r.spec.display_name,
                    "ok": r.ok,
                    "seconds": r.seconds,
                    "checks": [
                        {
                            "quantity": c.quantity,
                            "estimate": c.estimate,
                            "measured": c.measured,
                            "status": c.status,
                            "note": c.note,
                        }
                        for c in r.checks
                    ],
                    "method": list(r.method),
                }
                for r in results
            ],
        }

    def rows(self) -> list[list[object]]:
        """One row per check: the model, the quantity, both numbers as they are, the status and its note."""
        header: list[object] = ["model", "quantity", "estimate", "measured", "status", "note"]
        checks = [(r.spec.name, c) for r in self.results for c in r.checks]
        body: list[list[object]] = [[name, c.quantity, c.estimate, c.measured, c.status, c.note] for name, c in checks]
        return [header, *body]

    @staticmethod
    def _cells(result: Validation) -> list[list[str]]:
        return [[c.quantity, _shown(c.estimate), _shown(c.measured), c.difference, MARKS[c.status]]
                for c in result.checks]  # fmt: skip

    @staticmethod
    def _model(result: Validation, table: Text) -> list[Text]:
        """One model's answer around its ``table``: the title, the notes of the checks, how it was measured."""
        notes = [Text(f"{MARKS[c.status]} {c.quantity}: {c.note}", bullet="- ") for c in result.checks if c.note]
        return [
            Text(f"{result.spec.display_name} ({result.spec.name}): estimate against transformers and peft"),
            table,
            *notes,
            Text("How it was measured:"),
            *(Text(line, bullet="- ") for line in result.method),
            BLANK,
        ]

    def _summary(self) -> list[Text]:
        """The count of models and checks (for more than one model), the versions, the time and the memory."""
        from estimator.units import format_bytes

        results = self.results
        blocks = []
        if len(results) > 1:
            failed = [r.spec.name for r in results if not r.ok]
            agree = "all agree." if not failed else f"disagreements in {', '.join(failed)}."
            blocks.append(Text(f"{len(results)} models, {sum(len(r.checks) for r in results)} checks: {agree}"))
        total = sum(r.seconds for r in results)
        memory = format_bytes(self.peak_bytes, iec=True)
        return [*blocks, Text(results[0].versions.line()),
                Text(f"Validated in {total:.1f} s; peak memory of this process {memory} (RSS).")]  # fmt: skip

    def text(self) -> list[Text]:
        from estimator.present.tables import format_table

        blocks: list[Text] = []
        for result in self.results:
            table = format_table(HEADERS, self._cells(result), right={1, 2, 3})
            blocks += self._model(result, pre(table))
        return [*blocks, *self._summary()]

    def markdown(self) -> str:
        blocks: list[Text] = []
        for result in self.results:
            blocks += self._model(result, Text(markdown_table([HEADERS, *self._cells(result)])))
        return text_markdown([*blocks, *self._summary()])

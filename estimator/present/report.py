"""What every answer is to the faces that print it: a :class:`Report` with a record (``--format json`` and the
web API: base units in every key), rows (``--format csv``: the header first), text blocks (``--format table``:
what the command prints for a person) and Markdown (``--format markdown``). ``estimator.cli.output.emit`` is
the only writer of results; a new output format is a :class:`Format` member and one case there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TextIO, runtime_checkable


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


@dataclass(frozen=True)
class Text:
    """One block of a text answer: a paragraph (wrapped to a terminal's width, one unbroken line when piped,
    with an optional bullet) or, with ``wrap`` False, lines printed as they are (a table, a blank line)."""

    body: str
    wrap: bool = True
    bullet: str = ""


BLANK = Text("", wrap=False)


def pre(body: str) -> Text:
    """Lines printed as they are: an aligned table."""
    return Text(body, wrap=False)


class Report(Protocol):
    def record(self) -> Any: ...  # --format json and the web API

    def rows(self) -> list[list[object]]: ...  # --format csv: the header row first

    def text(self) -> list[Text]: ...  # --format table

    def markdown(self) -> str: ...  # --format markdown


@runtime_checkable
class Streamed(Protocol):
    """A report too large to build as one JSON document (a sweep's million rows): it writes its JSON itself, in
    chunks, and ``estimator.cli.output`` asks it to rather than dumping :meth:`Report.record`."""

    def write_json(self, stream: TextIO) -> None: ...


def _numeric(cell: object) -> bool:
    """A cell that reads as a number: ``1,024``, ``-0.5``, ``39.6x``, ``32.77 GB``, or a dash for none."""
    text = "" if cell is None else str(cell).strip()
    return text in ("—", "–") or text[:1].isdigit() or (text[:1] in "+-" and text[1:2].isdigit())


def markdown_table(rows: Sequence[Sequence[object]], right_from: int = 1) -> str:
    """GitHub Markdown of ``rows`` (the header first): from column ``right_from`` on, a column whose cells are
    mostly numbers is right-aligned (a text column such as a source or a unit stays left), and ``|`` in a cell
    is escaped. ``[["model", "bytes"], ["gpt2", 1]]`` -> ``| model | bytes |`` / ``|---|---:|`` / ``| gpt2 | 1 |``."""
    header, *body = rows

    def right(i: int) -> bool:
        cells = [row[i] for row in body if row[i] not in (None, "")]
        return i >= right_from and bool(cells) and 2 * sum(map(_numeric, cells)) >= len(cells)

    rule = "|" + "|".join("---:" if right(i) else "---" for i in range(len(header))) + "|"

    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join("" if c is None else str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), rule, *(line(cells) for cells in body)])


def text_markdown(blocks: Sequence[Text]) -> str:
    """The text answer as Markdown: each paragraph apart, bullets as one list, a table's lines in a fenced block
    (a block that is already Markdown, starting with ``|``, as it is); blank blocks give way to that spacing."""
    chunks: list[str] = []
    for block in blocks:
        if not block.body:
            continue
        if block.wrap and block.bullet and chunks and chunks[-1].startswith("- "):
            chunks[-1] += f"\n- {block.body}"
        elif block.wrap:
            chunks.append(f"- {block.body}" if block.bullet else block.body)
        else:
            chunks.append(block.body if block.body.startswith("|") else f"```\n{block.body}\n```")
    return "\n\n".join(chunks)

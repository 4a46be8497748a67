"""Every notebook in notebooks/ executes top to bottom, and imports its formulas rather than defining them."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    outputs = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "match: False" not in outputs
    images = sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))
    assert images >= 4, "the figures did not render"
    if path.name == "kv_cache_vs_lora.ipynb":
        assert outputs.count("match: True") == 2
        assert "39.6x" in outputs and "0.0094 bytes per pretraining token" in outputs
        assert "full at 339,754,925 tokens" in outputs and "1,075,174 stored bits" in outputs
        assert "63.31" in outputs and "1053.69" in outputs  # section 11: QLoRA with checkpointing fits one H100


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_defines_no_formula(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert not re.search(r"^\s*(def|class)\s|lambda", code, flags=re.MULTILINE)


def test_there_is_a_notebook() -> None:
    assert NOTEBOOKS

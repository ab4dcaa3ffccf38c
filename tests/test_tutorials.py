"""The tutorial notebooks run top to bottom (with the shipped model) and show their figures."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from audio_sheet_retrieval import pretrained

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("*.ipynb"))
DRAWS = re.compile(r"\bplt\.(show|figure|subplots|imshow|plot)\(")
"""A code cell that matches draws a figure, and must show it as an image."""


def figure_cells(notebook) -> list:
    """The executed code cells that draw with pyplot."""
    return [cell for cell in notebook.cells
            if cell.cell_type == "code" and DRAWS.search(cell.source)]


def png_outputs(cell) -> int:
    """Number of ``image/png`` outputs of an executed code cell."""
    return sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, tmp_path):
    assert pretrained.available(), "no shipped model under pretrained/"
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        f"{path.name}: commit notebooks with their outputs cleared"
    assert not any("matplotlib.use" in cell.source for cell in notebook.cells), \
        f"{path.name}: a tutorial must not switch matplotlib's backend"
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    cells = figure_cells(notebook)
    assert cells, f"{path.name}: a tutorial without figures?"
    for cell in cells:
        expected = max(1, cell.source.count("plt.show()"))
        assert png_outputs(cell) >= expected, (
            f"{path.name}: a cell that draws shows {png_outputs(cell)} of {expected} figure(s) "
            f"(did an import switch matplotlib's backend?):\n{cell.source[:300]}")


def test_there_are_two_tutorials():
    assert {p.stem for p in TUTORIALS} == {"Embedding Tutorial", "Audio-to-Audio Tutorial"}

"""The tutorial notebooks run top to bottom (with the shipped model)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from audio_sheet_retrieval import pretrained

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("*.ipynb"))


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, tmp_path):
    assert pretrained.available(), "no shipped model under pretrained/"
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        f"{path.name}: commit notebooks with their outputs cleared"
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()


def test_there_are_two_tutorials():
    assert {p.stem for p in TUTORIALS} == {"Embedding Tutorial", "Audio-to-Audio Tutorial"}

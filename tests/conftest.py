"""Shared fixtures: a small real data set built once per test session.

Two short corpus pieces are engraved with verovio, rendered with three synths
at two tempi and featurized, exactly as ``build_dataset.py`` does.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

TEST_PIECES = ("bach/bwv846", "bach/bwv259")
TEST_SYNTHS = ("FluidR3Grand", "TimGM6mbPiano", "ElectricPiano")
TEST_TEMPI = (1.0, 1.1)


@pytest.fixture(scope="session")
def built_root(tmp_path_factory) -> Path:
    """A data root holding TEST_PIECES, built by the real pipeline."""
    from audio_sheet_retrieval.build.dataset import build_dataset
    from audio_sheet_retrieval.build.pipeline import BuildOptions
    from audio_sheet_retrieval.build.sources import resolve

    root = tmp_path_factory.mktemp("msmd")
    options = BuildOptions(synths=TEST_SYNTHS, tempi=TEST_TEMPI)
    reports, _ = build_dataset(resolve(list(TEST_PIECES)), root, options, jobs=1)
    assert all(r.status == "built" for r in reports), [r.error for r in reports]
    return root


@pytest.fixture(scope="session")
def test_config() -> dict:
    """An experiment configuration over the synths of ``built_root``."""
    from audio_sheet_retrieval.config.exp_config import validate_config

    return validate_config({
        "SHEET_CONTEXT": 200, "STAFF_HEIGHT": 160, "SPEC_CONTEXT": 42, "SPEC_BINS": 92, "FPS": 20,
        "AUGMENT": {"system_translation": 5, "sheet_scaling": [0.95, 1.05], "onset_translation": 1,
                    "synths": ["FluidR3Grand", "ElectricPiano"], "tempo_range": [1.0, 1.1]},
        "TEST_SYNTH": "TimGM6mbPiano", "TEST_TEMPO": 1.0,
    })

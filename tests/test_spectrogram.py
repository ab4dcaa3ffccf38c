"""The 92-band spectrogram matches madmom's definition."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audio_sheet_retrieval.audio.spectrogram import N_BINS, log_filterbank, n_frames, spectrogram
from tests.data.make_madmom_reference import test_signal as reference_signal

REFERENCE = Path(__file__).with_name("data") / "madmom_reference.npz"


def test_filterbank_has_92_bands_each_summing_to_one():
    fb = log_filterbank()
    assert fb.shape == (1024, N_BINS) == (1024, 92)
    np.testing.assert_allclose(fb.sum(axis=0), 1.0, rtol=1e-5)


def test_filterbank_equals_madmom():
    ref = np.load(REFERENCE)["filterbank"]  # computed by madmom itself (see make_madmom_reference.py)
    np.testing.assert_allclose(log_filterbank(), ref, atol=1e-6)


def test_spectrogram_equals_madmom():
    ref = np.load(REFERENCE)["spectrogram"]
    ours = spectrogram(reference_signal())
    assert ours.shape == ref.shape == (92, 60)
    np.testing.assert_allclose(ours, ref, atol=5e-3)


def test_frame_count_and_silence():
    y = np.zeros(22050 * 2 + 1, dtype=np.float32)
    spec = spectrogram(y)
    assert spec.shape == (92, n_frames(len(y))) == (92, 41)
    assert np.all(spec == 0)

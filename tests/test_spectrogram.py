"""The 92-band spectrogram matches madmom's definition."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audio_sheet_retrieval.audio.spectrogram import (
    N_BINS,
    frame_starts,
    log_filterbank,
    n_frames,
    spectrogram,
)
from tests.data.make_madmom_reference import test_signal as reference_signal

REFERENCE = Path(__file__).with_name("data") / "madmom_reference.npz"
FRAMING = Path(__file__).with_name("data") / "madmom_framing_reference.npz"
"""madmom's frame counts, frame starts and a padded last frame (make_madmom_framing_reference.py)."""


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
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)


def test_frame_starts_truncate_the_fractional_hop_like_madmom():
    ref = np.load(FRAMING)
    starts = frame_starts(len(ref["frame_starts"]))
    np.testing.assert_array_equal(starts, ref["frame_starts"])
    assert starts[:5].tolist() == [0, 1102, 2205, 3307, 4410]  # int(i * 1102.5), not rounded


def test_frame_count_equals_madmom():
    ref = np.load(FRAMING)
    ours = [n_frames(int(n)) for n in ref["lengths"]]
    assert ours == ref["num_frames"].tolist()
    assert [spectrogram(np.zeros(int(n), np.float32)).shape[1] for n in ref["lengths"]] == ours


def test_padded_last_frame_equals_madmom():
    ref = np.load(FRAMING)
    y = reference_signal()[:int(ref["odd_length"])]
    ours = spectrogram(y)
    assert ours.shape == ref["spectrogram"].shape == (92, 60)
    np.testing.assert_allclose(ours, ref["spectrogram"], rtol=0, atol=1e-5)


def test_frame_count_and_silence():
    y = np.zeros(22050 * 2 + 1, dtype=np.float32)
    spec = spectrogram(y)
    assert spec.shape == (92, n_frames(len(y))) == (92, 41)
    assert np.all(spec == 0)

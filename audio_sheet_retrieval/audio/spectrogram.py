"""The MSMD spectrogram: madmom's log-filtered magnitude spectrogram in numpy.

The original system computed features with madmom as
``SignalProcessor(num_channels=1, sample_rate=22050) -> FramedSignalProcessor(
frame_size=2048, fps=20, origin='future') -> FilteredSpectrogramProcessor(
LogarithmicFilterbank, num_bands=16, fmin=30, fmax=6000) ->
LogarithmicSpectrogramProcessor()``: 92 bands at 20 frames per second.
madmom does not install on Python 3.11, so this module re-implements exactly
that chain; the hop of 1102.5 samples is fractional, which librosa cannot do.
"""

from __future__ import annotations

import numpy as np

SR = 22050
"""Sample rate of the features, in Hz."""
FRAME_SIZE = 2048
"""STFT frame length, in samples."""
FPS = 20
"""Frame rate of the features, in frames per second."""
BANDS_PER_OCTAVE = 16
FMIN = 30.0
FMAX = 6000.0
FREF = 440.0
N_BINS = 92
"""Number of log-frequency bands of the default filterbank."""


def log_frequencies(bands_per_octave: int, fmin: float, fmax: float,
                    fref: float = FREF) -> np.ndarray:
    """Logarithmically spaced frequencies aligned to ``fref``, in Hz.

    Parameters
    ----------
    bands_per_octave : int
        Number of frequencies per octave.
    fmin, fmax : float
        Lowest and highest frequency to keep, in Hz (inclusive).
    fref : float
        Reference frequency every returned frequency is a multiple of
        ``2 ** (1 / bands_per_octave)`` away from, in Hz.
    """
    left = np.floor(np.log2(fmin / fref) * bands_per_octave)
    right = np.ceil(np.log2(fmax / fref) * bands_per_octave)
    freqs = fref * 2.0 ** (np.arange(left, right) / bands_per_octave)
    return freqs[(freqs >= fmin) & (freqs <= fmax)]


def log_filterbank(sr: int = SR, n_fft: int = FRAME_SIZE,
                   bands_per_octave: int = BANDS_PER_OCTAVE,
                   fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """Triangular log-frequency filterbank, madmom's ``LogarithmicFilterbank``.

    Each band frequency is snapped to its nearest FFT bin (duplicates removed);
    consecutive bin triples give overlapping triangular filters at least one
    bin wide, each normalised to sum to 1.

    Parameters
    ----------
    sr : int
        Sample rate, in Hz.
    n_fft : int
        FFT size, in samples; the filterbank covers ``n_fft // 2`` bins.
    bands_per_octave, fmin, fmax
        Band spacing and frequency range (Hz).

    Returns
    -------
    np.ndarray, shape (n_fft // 2, n_bands), float32
    """
    n_bins = n_fft // 2
    bin_freqs = np.fft.fftfreq(n_fft, 1.0 / sr)[:n_bins]
    freqs = log_frequencies(bands_per_octave, fmin, fmax)
    idx = np.clip(np.searchsorted(bin_freqs, freqs), 1, n_bins - 1)
    nearer_left = freqs - bin_freqs[idx - 1] < bin_freqs[idx] - freqs
    bins = np.unique(idx - nearer_left.astype(int))
    n_bands = len(bins) - 2
    fb = np.zeros((n_bins, n_bands), dtype=np.float32)
    for band in range(n_bands):
        start, center, stop = bins[band:band + 3]
        if stop - start < 2:
            center, stop = start, start + 1
        tri = np.concatenate([
            np.linspace(0.0, 1.0, center - start, endpoint=False),
            np.linspace(1.0, 0.0, stop - center, endpoint=False),
        ])
        fb[start:stop, band] = tri / tri.sum()
    return fb


_FILTERBANK = log_filterbank()


def n_frames(n_samples: int, sr: int = SR, fps: int = FPS) -> int:
    """Number of feature frames of a signal of ``n_samples`` samples.

    madmom's ``FramedSignal`` with ``end='normal'``: frames are returned as
    long as their reference sample lies in the signal,
    ``ceil(n_samples / hop)`` with ``hop = sr / fps``.
    """
    return int(np.ceil(n_samples / (sr / fps)))


def frame_starts(count: int, sr: int = SR, fps: int = FPS) -> np.ndarray:
    """First sample of each of ``count`` frames (origin 'future').

    madmom's ``signal_frame`` places frame ``i`` at ``int(i * hop)``, with
    ``hop = sr / fps`` (1102.5 samples at 22050 Hz, 20 fps): the fractional
    position is **truncated**, not rounded, so odd frames start at
    ``1102 + 2205 * (i // 2)``. With origin 'future' the window starts at its
    reference sample.

    Parameters
    ----------
    count : int
        Number of frames.
    sr : int
        Sample rate, in Hz.
    fps : int
        Frames per second.

    Returns
    -------
    np.ndarray, shape (count,), int64
        Start sample of every frame.
    """
    return (np.arange(count, dtype=np.float64) * (sr / fps)).astype(np.int64)


def spectrogram(y: np.ndarray, sr: int = SR, fps: int = FPS) -> np.ndarray:
    """92-band log-frequency magnitude spectrogram of a mono signal.

    Frame ``i`` covers samples ``[int(i * hop), ... + 2048)`` with
    ``hop = sr / fps`` (origin 'future': a frame looks ahead from its time
    ``i / fps`` seconds; see :func:`frame_starts`), and there are
    :func:`n_frames` frames; the signal is zero-padded at the end. Each frame is
    Hann-windowed, its magnitude spectrum filtered by :func:`log_filterbank`
    and compressed with ``log10(1 + x)``.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono audio in [-1, 1] at ``sr`` Hz.
    sr : int
        Sample rate, in Hz; must be 22050 (the filterbank's rate).
    fps : int
        Frames per second.

    Returns
    -------
    np.ndarray, shape (92, n_frames), float32
        Bands (low to high) by frames.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"spectrogram expects mono audio, got shape {y.shape}")
    if sr != SR:
        raise ValueError(f"spectrogram expects {SR} Hz audio, got {sr} Hz; resample first")
    count = n_frames(len(y), sr, fps)
    starts = frame_starts(count, sr, fps)
    padded = np.concatenate([y, np.zeros(FRAME_SIZE, dtype=np.float32)])
    window = np.hanning(FRAME_SIZE).astype(np.float32)
    out = np.empty((N_BINS, count), dtype=np.float32)
    chunk = 2048  # frames per FFT batch, bounds memory for long recordings
    for lo in range(0, count, chunk):
        idx = starts[lo:lo + chunk, None] + np.arange(FRAME_SIZE)[None, :]
        mag = np.abs(np.fft.rfft(padded[idx] * window, axis=1))[:, :FRAME_SIZE // 2]
        out[:, lo:lo + chunk] = np.log10(1.0 + mag.astype(np.float32) @ _FILTERBANK).T
    return out


def onset_frame(onset_s: np.ndarray | float, fps: int = FPS) -> np.ndarray:
    """Frame index of an onset time: ``ceil(onset_s * fps)`` (MSMD's rule)."""
    return np.ceil(np.round(np.asarray(onset_s, dtype=np.float64) * fps, 6)).astype(np.int64)

"""Loading recordings of any format, rate and channel count."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from audio_sheet_retrieval.errors import AsrError


def load_audio(path: str | Path, sr: int = 22050) -> np.ndarray:
    """Load a recording as mono float32 at ``sr`` Hz.

    Reads WAV, FLAC, OGG and MP3 (libsndfile); channels are averaged and the
    signal is resampled with a polyphase filter.

    Parameters
    ----------
    path : str or Path
        Audio file.
    sr : int
        Target sample rate, in Hz.

    Returns
    -------
    np.ndarray, shape (n_samples,), float32

    Raises
    ------
    AsrError
        If the file is missing, not audio, empty, or holds samples that are
        not finite numbers (NaN or infinity, possible in float WAV files).
    """
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"{path}: audio file not found; check the path")
    try:
        y, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile raises several types
        raise AsrError(f"{path}: not a readable audio file ({str(err).splitlines()[0]}); "
                       "use WAV, FLAC, OGG or MP3") from None
    if len(y) == 0:
        raise AsrError(f"{path}: the audio file holds no samples; use a non-empty recording")
    finite = np.isfinite(y)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        first_s = int(np.flatnonzero(~finite.all(axis=1))[0]) / file_sr
        raise AsrError(f"{path}: {bad} sample{'s are' if bad > 1 else ' is'} not a finite number "
                       f"(NaN or infinity; the first at {first_s:.2f} s); re-export the recording")
    y = y.mean(axis=1)
    if file_sr != sr:
        g = gcd(int(file_sr), int(sr))
        y = resample_poly(y, sr // g, int(file_sr) // g).astype(np.float32)
    return y


SILENCE_PEAK = 1e-4
"""Peak amplitude (full scale 1) below which a recording counts as silent (-80 dBFS)."""


def recording_spectrogram(path: str | Path, min_frames: int) -> np.ndarray:
    """The 92-band spectrogram of a recording that must hold at least ``min_frames`` frames.

    Raises
    ------
    AsrError
        Missing or unreadable file, a silent recording (peak below -80 dBFS),
        or one shorter than ``min_frames`` frames.
    """
    from audio_sheet_retrieval.audio.spectrogram import FPS, SR, spectrogram

    y = load_audio(path, sr=SR)
    if not float(np.max(np.abs(y))) >= SILENCE_PEAK:  # also true for NaN, should any get through
        raise AsrError(f"{path}: the recording is silent (peak below -80 dBFS); use a recording "
                       "of music")
    spec = spectrogram(y)
    if spec.shape[1] < min_frames:
        raise AsrError(f"{path}: the recording lasts {len(y) / SR:.2f} s, shorter than one "
                       f"excerpt ({min_frames} frames = {min_frames / FPS:.2f} s); use a longer recording")
    return spec

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
        If the file is missing, not audio, or empty.
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
    y = y.mean(axis=1)
    if file_sr != sr:
        g = gcd(int(file_sr), int(sr))
        y = resample_poly(y, sr // g, int(file_sr) // g).astype(np.float32)
    return y

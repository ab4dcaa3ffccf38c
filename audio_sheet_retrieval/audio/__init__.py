"""Audio: loading any recording and the 92-band log-frequency spectrogram."""

from audio_sheet_retrieval.audio.io import load_audio
from audio_sheet_retrieval.audio.spectrogram import (
    FPS,
    N_BINS,
    SR,
    log_filterbank,
    spectrogram,
)

__all__ = ["FPS", "N_BINS", "SR", "load_audio", "log_filterbank", "spectrogram"]

"""Audio realism for training: room reverb, noise, equalization, compression.

Synthesized pianos are dry, noiseless and flat. Recordings are played in
rooms, through microphones and loudspeakers, and often compressed. This
module draws such conditions from a :class:`numpy.random.Generator` and
applies them in either of two domains, with the same parameters:

**Waveform** (mono, 22,050 Hz; for rendering extra variants at build time):
:func:`impulse_response` builds a synthetic room impulse response (direct
sound, early reflections, an exponentially decaying noise tail whose high
frequencies die sooner), :func:`reverb` convolves with it
(:func:`scipy.signal.fftconvolve`), :func:`add_noise` adds coloured noise at
a signal-to-noise ratio, :func:`equalize` runs random peaking filters
(:func:`scipy.signal.sosfilt`), :func:`compress` is a feed-forward RMS
compressor. :func:`augment_audio` chains them.

**Spectrogram** (the 92-band ``log10(1 + x)`` features of
:mod:`audio_sheet_retrieval.audio.spectrogram`; for the pools, on the fly):
:func:`reverb_bands`, :func:`noise_bands`, :func:`equalize_bands` and
:func:`compress_bands` model the same effects on the linear band magnitudes
(:func:`band_magnitudes`, back with :func:`log_bands`): reverb as the
impulse response's tail power decaying frame by frame, noise as added power,
the equalizer as its gain at each band, compression as a per-frame gain.
:func:`augment_spectrogram` chains them on an excerpt for a fraction of a
millisecond, where the waveform chain plus a new spectrogram costs tens of
milliseconds per training pair (``bench/augmentation.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy import signal

from audio_sheet_retrieval.audio.spectrogram import FPS, FRAME_SIZE, SR, log_filterbank

_DIRECT_S = 0.0
"""Time of the direct sound in an impulse response: onsets do not move."""
NOISE_FLOOR_HZ = 20.0
"""Coloured noise is flat below this frequency (no inaudible drift), Hz."""
CROSSOVER_HZ = 2000.0
"""Split between the low and the high part of a reverberation tail, Hz."""


@dataclass(frozen=True)
class AudioAugmentOptions:
    """Ranges of the audio conditions; each is drawn uniformly.

    Attributes
    ----------
    rt60_s : (float, float)
        Reverberation time (60 dB decay) at low frequencies, seconds.
    rt60_high_ratio : (float, float)
        Reverberation time above ~2 kHz, as a fraction of ``rt60_s``.
    drr_db : (float, float)
        Direct-to-reverberant energy ratio, dB (high = dry, near the piano).
    predelay_s : (float, float)
        Delay of the first reflection after the direct sound, seconds.
    snr_db : (float, float)
        Signal-to-noise ratio of the added noise, dB.
    noise_color : (float, float)
        Exponent ``a`` of the noise's ``1 / f ** a`` power spectrum (0 white, 1 pink, 2 brown).
    eq_bands : int
        Number of random peaking filters.
    eq_gain_db : float
        Largest gain of a peaking filter, dB (drawn in ``[-eq_gain_db, eq_gain_db]``).
    comp_threshold_db : (float, float)
        Compressor threshold relative to the signal's RMS level, dB.
    comp_ratio : (float, float)
        Compression ratio above the threshold.
    p_reverb, p_noise, p_eq, p_compress : float
        Probability of each effect in :func:`augment_audio` / :func:`augment_spectrogram`.
    """

    rt60_s: tuple[float, float] = (0.2, 1.5)
    rt60_high_ratio: tuple[float, float] = (0.4, 0.9)
    drr_db: tuple[float, float] = (-3.0, 12.0)
    predelay_s: tuple[float, float] = (0.003, 0.02)
    snr_db: tuple[float, float] = (15.0, 45.0)
    noise_color: tuple[float, float] = (0.0, 2.0)
    eq_bands: int = 3
    eq_gain_db: float = 9.0
    comp_threshold_db: tuple[float, float] = (-12.0, 0.0)
    comp_ratio: tuple[float, float] = (1.5, 4.0)
    p_reverb: float = 0.5
    p_noise: float = 0.5
    p_eq: float = 0.5
    p_compress: float = 0.3

    def __post_init__(self):
        for name in ("rt60_s", "rt60_high_ratio", "drr_db", "predelay_s", "snr_db", "noise_color",
                     "comp_threshold_db", "comp_ratio"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"AudioAugmentOptions.{name}: low {lo} above high {hi}")
        if self.rt60_s[0] <= 0 or self.rt60_high_ratio[0] <= 0 or self.comp_ratio[0] < 1:
            raise ValueError("AudioAugmentOptions: rt60 must be > 0 and comp_ratio >= 1")


# --------------------------------------------------------------------------
# Parameters, shared by both domains
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Room:
    """Acoustics of a synthetic room.

    Attributes
    ----------
    rt60_s : float
        Reverberation time below ~2 kHz, seconds.
    rt60_high_s : float
        Reverberation time above ~2 kHz, seconds.
    drr_db : float
        Direct-to-reverberant energy ratio, dB.
    predelay_s : float
        Delay of the reverberant part after the direct sound, seconds.
    """

    rt60_s: float
    rt60_high_s: float
    drr_db: float
    predelay_s: float


def draw_room(rng: np.random.Generator, options: AudioAugmentOptions = AudioAugmentOptions()) -> Room:
    """A random :class:`Room` within ``options``' ranges."""
    rt60 = rng.uniform(*options.rt60_s)
    return Room(rt60, rt60 * rng.uniform(*options.rt60_high_ratio), rng.uniform(*options.drr_db),
                rng.uniform(*options.predelay_s))


def draw_eq(rng: np.random.Generator, options: AudioAugmentOptions = AudioAugmentOptions(),
            sr: int = SR) -> np.ndarray:
    """Random peaking filters (RBJ cookbook biquads) as second-order sections.

    Centre frequencies are log-uniform over 60 Hz-6 kHz, Q over 0.5-2,
    gains uniform within ``eq_gain_db``.

    Returns
    -------
    np.ndarray, shape (eq_bands, 6)
        ``sos`` for :func:`scipy.signal.sosfilt`.
    """
    sos = np.zeros((options.eq_bands, 6))
    for k in range(options.eq_bands):
        f0 = 60.0 * 100.0 ** rng.uniform()
        q = rng.uniform(0.5, 2.0)
        a = 10.0 ** (rng.uniform(-options.eq_gain_db, options.eq_gain_db) / 40.0)
        w0 = 2 * np.pi * f0 / sr
        alpha = np.sin(w0) / (2 * q)
        b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
        den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
        sos[k] = np.concatenate([b / den[0], den / den[0]])
    return sos


# --------------------------------------------------------------------------
# Waveform domain
# --------------------------------------------------------------------------


def impulse_response(room: Room, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    """A synthetic room impulse response.

    A unit direct sound at time 0 (so onsets stay where they are), then from
    ``predelay_s`` on a Gaussian-noise tail decaying by 60 dB over
    ``rt60_s`` below and ``rt60_high_s`` above 2 kHz (a Butterworth split),
    with six sparse early reflections in its first 50 ms; the tail's energy
    is ``drr_db`` below the direct sound's.

    Parameters
    ----------
    room : Room
    rng : numpy.random.Generator
    sr : int
        Sample rate, Hz.

    Returns
    -------
    np.ndarray, shape (n,), float32
        ``n`` covers ``predelay_s`` plus 1.2 ``rt60_s`` (at least 0.1 s).
    """
    n = int(sr * max(room.predelay_s + 1.2 * room.rt60_s, 0.1))
    start = max(1, int(round(room.predelay_s * sr)))
    t = np.arange(n - start) / sr
    noise = rng.standard_normal(n - start)
    split = signal.butter(2, CROSSOVER_HZ, fs=sr, output="sos")
    low = signal.sosfilt(split, noise)
    high = noise - low
    tail = low * np.exp(-6.908 * t / room.rt60_s) + high * np.exp(-6.908 * t / room.rt60_high_s)
    early = rng.integers(0, max(2, int(0.05 * sr)), 6)
    tail[early[early < len(tail)]] += rng.choice([-1.0, 1.0], (early < len(tail)).sum()) * 3 * tail.std()
    tail *= np.sqrt(10.0 ** (-room.drr_db / 10.0) / np.sum(tail ** 2))
    ir = np.zeros(n, dtype=np.float64)
    ir[int(_DIRECT_S * sr)] = 1.0
    ir[start:] += tail
    return ir.astype(np.float32)


def reverb(y: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """``y`` played in the room of ``ir`` (FFT convolution), same length, float32.

    The tail beyond the end of ``y`` is cut, so frames and onsets keep their times.
    """
    return signal.fftconvolve(y, ir)[:len(y)].astype(np.float32)


def colored_noise(n: int, rng: np.random.Generator, color: float, sr: int = SR) -> np.ndarray:
    """Noise with a ``1 / f ** color`` power spectrum (flat below ``NOISE_FLOOR_HZ``) and
    unit RMS, shape (n,), float32."""
    m = sfft.next_fast_len(n, real=True)
    spec = sfft.rfft(rng.standard_normal(m, dtype=np.float32))
    f = np.maximum(sfft.rfftfreq(m, 1.0 / sr), NOISE_FLOOR_HZ).astype(np.float32)
    x = sfft.irfft(spec * f ** (-color / 2.0), m)[:n]
    return (x / np.sqrt(np.mean(np.square(x, dtype=np.float64)))).astype(np.float32)


def add_noise(y: np.ndarray, rng: np.random.Generator, snr_db: float, color: float = 0.0) -> np.ndarray:
    """``y`` plus coloured noise ``snr_db`` below its RMS level, float32."""
    rms = np.sqrt(np.mean(np.square(y, dtype=np.float64)))
    return (y + colored_noise(len(y), rng, color) * rms * 10.0 ** (-snr_db / 20.0)).astype(np.float32)


def equalize(y: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """``y`` through the filters ``sos`` (:func:`draw_eq`), float32."""
    return signal.sosfilt(sos, y).astype(np.float32)


def compress(y: np.ndarray, threshold_db: float, ratio: float, window_s: float = 0.05,
             sr: int = SR, block: int = 32) -> np.ndarray:
    """Feed-forward RMS compressor.

    The level is the RMS over about ``window_s`` (a one-pole smoother of the
    power of blocks of ``block`` samples); above ``threshold_db`` (relative to
    the RMS of all of ``y``) it is reduced by ``ratio``; the loss at the
    signal's RMS level is made up. The gain is interpolated linearly between
    block centres.

    Returns
    -------
    np.ndarray, shape (n,), float32
    """
    y = np.asarray(y, dtype=np.float32)
    n_blocks = -(-len(y) // block)
    padded = np.zeros(n_blocks * block, dtype=np.float32)
    padded[:len(y)] = y
    power = np.mean(np.square(padded.reshape(n_blocks, block), dtype=np.float64), axis=1)
    a = np.exp(-block / (window_s * sr))
    level = signal.lfilter([1 - a], [1, -a], power)
    ref_db = 10 * np.log10(np.mean(np.square(y, dtype=np.float64)) + 1e-12)
    over = 10 * np.log10(level + 1e-12) - ref_db - threshold_db
    gain_db = (max(-threshold_db, 0.0) - np.maximum(over, 0.0)) * (1 - 1 / ratio)
    centres = (np.arange(n_blocks) + 0.5) * block
    gain = np.interp(np.arange(len(y)), centres, 10.0 ** (gain_db / 20.0))
    return (y * gain).astype(np.float32)


def augment_audio(y: np.ndarray, rng: np.random.Generator,
                  options: AudioAugmentOptions = AudioAugmentOptions()) -> np.ndarray:
    """Reverb, equalizer, compression and noise, each with its probability.

    The order is that of a recording chain: the room, the microphone and
    mixing (equalizer, compressor), then noise.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono audio at 22,050 Hz.
    rng : numpy.random.Generator
    options : AudioAugmentOptions

    Returns
    -------
    np.ndarray, shape (n,), float32
    """
    out = np.asarray(y, dtype=np.float32)
    if rng.random() < options.p_reverb:
        out = reverb(out, impulse_response(draw_room(rng, options), rng))
    if rng.random() < options.p_eq:
        out = equalize(out, draw_eq(rng, options))
    if rng.random() < options.p_compress:
        out = compress(out, rng.uniform(*options.comp_threshold_db), rng.uniform(*options.comp_ratio))
    if rng.random() < options.p_noise:
        out = add_noise(out, rng, rng.uniform(*options.snr_db), rng.uniform(*options.noise_color))
    return out


# --------------------------------------------------------------------------
# Spectrogram domain
# --------------------------------------------------------------------------

_FB = log_filterbank()
_BIN_HZ = np.fft.rfftfreq(FRAME_SIZE, 1.0 / SR)[:FRAME_SIZE // 2]
BAND_HZ = _BIN_HZ @ _FB
"""Centre of mass of each band's triangular filter, Hz, shape (92,)."""
_BAND_BINS = 1.0 / _FB.max(axis=0)
"""Width of each band in FFT bins (its triangle's peak is 1 / width)."""
_HANN_POWER = float(np.sum(np.hanning(FRAME_SIZE) ** 2))
"""Sum of the squared Hann window: a white noise of unit variance has this power per FFT bin."""
_RAYLEIGH_SPREAD = float(np.sqrt(4 / np.pi - 1))
"""Relative standard deviation of a Rayleigh-distributed magnitude."""
_Z1 = np.exp(-2j * np.pi * _BIN_HZ / SR)
"""``z ** -1`` at the FFT bins: evaluates filters' responses there."""
_FB32 = _FB.astype(np.float32)
_NOISE_HZ = np.maximum(_BIN_HZ, NOISE_FLOOR_HZ).astype(np.float32)
_SPREAD = (_RAYLEIGH_SPREAD / np.sqrt(_BAND_BINS)).astype(np.float32)
"""Relative spread of a band's noise magnitude: a Rayleigh variable averaged over its bins."""


def _sos_response(sos: np.ndarray, z1: np.ndarray = _Z1) -> np.ndarray:
    """Complex response of second-order sections at the points ``z1 = exp(-j w)``."""
    z2 = z1 * z1
    num = sos[:, 0:1] + sos[:, 1:2] * z1 + sos[:, 2:3] * z2
    den = sos[:, 3:4] + sos[:, 4:5] * z1 + sos[:, 5:6] * z2
    return np.prod(num / den, axis=0)


_Z1_BANDS = np.exp(-2j * np.pi * BAND_HZ / SR)
_CROSSOVER = _sos_response(signal.butter(2, CROSSOVER_HZ, fs=SR, output="sos"))
_CROSSOVER_MEAN = (float(np.mean(np.abs(_CROSSOVER) ** 2)), float(np.mean(np.abs(1 - _CROSSOVER) ** 2)))
"""Mean power response of the impulse response's low and high parts over all bins."""
_CROSSOVER_BANDS = (np.abs(_CROSSOVER) ** 2 @ _FB, np.abs(1 - _CROSSOVER) ** 2 @ _FB)
"""Power response of the low and high parts in each band, shape (92,) each."""


def band_magnitudes(spec: np.ndarray) -> np.ndarray:
    """Linear band magnitudes of a ``log10(1 + magnitude)`` spectrogram, float32."""
    return np.power(10.0, spec, dtype=np.float32) - 1.0


def log_bands(magnitudes: np.ndarray) -> np.ndarray:
    """``log10(1 + magnitude)``: the inverse of :func:`band_magnitudes`, float32."""
    return np.log10(1.0 + np.maximum(magnitudes, 0.0)).astype(np.float32)


def reverb_bands(mag: np.ndarray, room: Room, fps: int = FPS) -> np.ndarray:
    """Reverb on band magnitudes: the power of :func:`impulse_response`'s tail, frame by frame.

    The tail of the impulse response has two parts split at 2 kHz, decaying
    by 60 dB over ``rt60_s`` and ``rt60_high_s``; a band gets each part's
    energy by its share of the crossover's power response, scaled so that the
    whole tail is ``drr_db`` below the direct sound. Each part's energy is
    spread over the frames by its exponential decay (the energy falling
    within half a frame joins the current frame); the tail's band magnitudes
    are Rayleigh-distributed, so their mean squared is pi / 4 of their power.
    The reverberant power adds to the direct power.

    Parameters
    ----------
    mag : np.ndarray, shape (bins, frames)
        Band magnitudes (:func:`band_magnitudes`) of a spectrogram or an excerpt.
    room : Room
    fps : int
        Frame rate.

    Returns
    -------
    np.ndarray, shape (bins, frames), float32
    """
    bins = mag.shape[0]
    power = np.square(mag, dtype=np.float32)
    rts = (room.rt60_s, room.rt60_high_s)
    k = np.pi / 4 * 10.0 ** (-room.drr_db / 10.0) / (_CROSSOVER_MEAN[0] * rts[0]
                                                      + _CROSSOVER_MEAN[1] * rts[1])
    wet = power.copy()
    for share, rt in zip(_CROSSOVER_BANDS, rts):
        x = 13.816 / (rt * fps)  # power decay per frame: exp(-x), 60 dB over rt
        d = np.exp(-x)
        energy = (k * rt * share[:bins])[:, None].astype(np.float32)
        later = signal.lfilter([0.0, d], [1.0, -d], power, axis=1)  # sum_k>=1 d^k P[t-k]
        wet += energy * ((1 - np.exp(-x / 2)) * power + 2 * np.sinh(x / 2) * later).astype(np.float32)
    return np.sqrt(wet)


def noise_bands(mag: np.ndarray, rng: np.random.Generator, snr_db: float, color: float = 0.0) -> np.ndarray:
    """Coloured noise on band magnitudes, as :func:`add_noise` would put it into the bands.

    The signal's power is estimated from the excerpt (each band's squared
    magnitude times its width in FFT bins, Parseval with the Hann window);
    the noise's expected band magnitude follows from its ``1 / f ** color``
    spectrum (Rayleigh-distributed bins averaged by each band's filter),
    fluctuating per frame by the Rayleigh spread over the band's bins; noise
    and signal add as powers.

    Parameters
    ----------
    mag : np.ndarray, shape (bins, frames)
        Band magnitudes of the 92-band spectrogram (an excerpt of it).
    rng : numpy.random.Generator
    snr_db : float
        Signal-to-noise ratio, dB.
    color : float
        Exponent of the noise's power spectrum.

    Returns
    -------
    np.ndarray, shape (bins, frames), float32
    """
    bins = mag.shape[0]
    signal_power = float(np.mean(_BAND_BINS[:bins] @ np.square(mag, dtype=np.float32))) / (
        FRAME_SIZE // 2 * _HANN_POWER)
    noise_power = signal_power * 10.0 ** (-snr_db / 10.0)
    shape = _NOISE_HZ ** (-color / 2.0)
    shape /= np.sqrt(np.mean(shape ** 2))  # unit mean power per bin
    mean = (np.sqrt(np.pi / 4 * _HANN_POWER * noise_power) * (shape @ _FB32)[:bins]).astype(np.float32)
    spread = _SPREAD[:bins, None]
    noise = mean[:, None] * np.maximum(1.0 + spread * rng.standard_normal(mag.shape, dtype=np.float32), 0.0)
    return np.sqrt(np.square(mag) + np.square(noise))


def eq_gains(sos: np.ndarray) -> np.ndarray:
    """Magnitude gain of the filters ``sos`` at each band's centre, shape (92,)."""
    return np.abs(_sos_response(sos, _Z1_BANDS)).astype(np.float32)


def equalize_bands(mag: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """The equalizer ``sos`` (:func:`draw_eq`) as gains on band magnitudes, shape kept."""
    return mag * eq_gains(sos)[:mag.shape[0], None]


def compress_bands(mag: np.ndarray, threshold_db: float, ratio: float) -> np.ndarray:
    """:func:`compress` per frame on band magnitudes: the frame's power sets one gain for its bands.

    Levels are relative to the excerpt's mean frame power.
    """
    level = np.sum(np.square(mag), axis=0) + 1e-12
    over = 10 * np.log10(level / level.mean()) - threshold_db
    gain_db = (max(-threshold_db, 0.0) - np.maximum(over, 0.0)) * (1 - 1 / ratio)
    return mag * np.power(10.0, gain_db / 20.0, dtype=np.float32)[None, :]


def augment_spectrogram(spec: np.ndarray, rng: np.random.Generator,
                        options: AudioAugmentOptions = AudioAugmentOptions()) -> np.ndarray:
    """:func:`augment_audio`'s chain on a spectrogram excerpt.

    The excerpt is turned into band magnitudes once, each effect runs with its
    probability (:func:`reverb_bands`, :func:`equalize_bands`,
    :func:`compress_bands`, :func:`noise_bands`), and the result is
    compressed back with ``log10(1 + x)``.

    Parameters
    ----------
    spec : np.ndarray, shape (bins, frames)
        ``log10(1 + magnitude)`` excerpt (zeros are silence).
    rng : numpy.random.Generator
    options : AudioAugmentOptions

    Returns
    -------
    np.ndarray, shape (bins, frames), float32
    """
    spec = np.asarray(spec, dtype=np.float32)
    draws = rng.random(4) < (options.p_reverb, options.p_eq, options.p_compress, options.p_noise)
    if not draws.any():
        return spec.copy()
    mag = band_magnitudes(spec)
    if draws[0]:
        mag = reverb_bands(mag, draw_room(rng, options))
    if draws[1]:
        mag = equalize_bands(mag, draw_eq(rng, options))
    if draws[2]:
        mag = compress_bands(mag, rng.uniform(*options.comp_threshold_db), rng.uniform(*options.comp_ratio))
    if draws[3] and mag.any():
        mag = noise_bands(mag, rng, rng.uniform(*options.snr_db), rng.uniform(*options.noise_color))
    return log_bands(mag)

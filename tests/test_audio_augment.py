"""Audio realism: rooms, noise, equalizer, compressor, in the waveform and in the spectrogram."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from audio_sheet_retrieval.audio import augment as A
from audio_sheet_retrieval.audio.spectrogram import SR, spectrogram


@pytest.fixture(scope="module")
def piano() -> np.ndarray:
    """12 s of a real synth: broken chords and a melody, 0.25 s per note."""
    from audio_sheet_retrieval.build.synth import render

    rows = []
    chords = [(48, 55, 64, 67, 72), (50, 57, 65, 69, 74), (47, 55, 62, 67, 71), (48, 55, 64, 67, 72)]
    for bar in range(12):
        chord = chords[bar % 4]
        for k in range(4):
            rows.append((bar * 1.0 + k * 0.25, chord[k % 5] + 12 * (k == 3), 0.3, 0, 0))
        rows.append((bar * 1.0, chord[0] - 12, 1.0, 1, 0))
    return render("FluidR3Grand", np.array(rows, dtype=np.float64))


def _rt60(ir: np.ndarray, sr: int = SR) -> float:
    """Reverberation time by Schroeder backward integration (T20: -5 to -25 dB, times 3)."""
    edc = np.cumsum(ir[::-1].astype(np.float64) ** 2)[::-1]
    db = 10 * np.log10(edc / edc[0])
    t5, t25 = np.argmax(db <= -5) / sr, np.argmax(db <= -25) / sr
    return 3.0 * (t25 - t5)


def _bands(effect, spec: np.ndarray, *args) -> np.ndarray:
    """A band-magnitude effect applied to a log spectrogram."""
    return A.log_bands(effect(A.band_magnitudes(spec), *args))


def _compare(reference: np.ndarray, model: np.ndarray, dry: np.ndarray) -> tuple[float, float]:
    """(correlation of the changes, mean error / mean change) of a model against the reference."""
    change, modelled = reference - dry, model - dry
    return (float(np.corrcoef(change.ravel(), modelled.ravel())[0, 1]),
            float(np.abs(reference - model).mean() / np.abs(change).mean()))


def test_impulse_response_has_its_room():
    rng = np.random.default_rng(0)
    for rt60, drr in ((0.4, 6.0), (1.2, -2.0)):
        room = A.Room(rt60_s=rt60, rt60_high_s=0.5 * rt60, drr_db=drr, predelay_s=0.01)
        ir = A.impulse_response(room, rng)
        assert ir[0] == 1.0 and np.all(ir[1:int(0.01 * SR)] == 0)  # direct sound first: onsets stay
        tail = ir[1:].astype(np.float64)
        assert abs(10 * np.log10(1.0 / np.sum(tail ** 2)) - drr) < 0.01
        low = signal.sosfilt(signal.butter(4, 500, fs=SR, output="sos"), tail)
        high = signal.sosfilt(signal.butter(4, 4000, "high", fs=SR, output="sos"), tail)
        assert abs(_rt60(low) - rt60) < 0.15 * rt60
        assert abs(_rt60(high) - 0.5 * rt60) < 0.2 * rt60


def test_noise_at_its_snr_and_colour():
    y = np.sin(2 * np.pi * 440 * np.arange(SR * 4) / SR).astype(np.float32)
    for snr, color in ((10.0, 0.0), (30.0, 1.0), (20.0, 2.0)):
        noise = A.add_noise(y, np.random.default_rng(1), snr, color).astype(np.float64) - y
        measured = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean(noise ** 2))
        assert abs(measured - snr) < 0.05
        f, psd = signal.welch(noise, SR, nperseg=4096)
        band = (f > 100) & (f < 5000)
        slope = np.polyfit(np.log(f[band]), np.log(psd[band]), 1)[0]
        assert abs(slope + color) < 0.15, (color, slope)


def test_equalizer_and_its_band_gains():
    sos = A.draw_eq(np.random.default_rng(3), A.AudioAugmentOptions(eq_bands=4, eq_gain_db=12))
    assert sos.shape == (4, 6)
    white = np.random.default_rng(0).standard_normal(SR * 8).astype(np.float32)
    f, before = signal.welch(white, SR, nperseg=2048)
    _, after = signal.welch(A.equalize(white, sos), SR, nperseg=2048)
    _, h = signal.sosfreqz(sos, worN=f, fs=SR)
    band = (f > 50) & (f < 8000)
    assert np.allclose(10 * np.log10(after[band] / before[band]), 20 * np.log10(np.abs(h[band])), atol=1.0)


def test_compressor_narrows_the_dynamics(piano):
    out = A.compress(piano, threshold_db=-10.0, ratio=4.0)
    frames = lambda x: np.sqrt(np.mean(x[:len(x) // 1000 * 1000].reshape(-1, 1000) ** 2, axis=1))  # noqa: E731
    loud_before, loud_after = frames(piano), frames(out)
    keep = loud_before > 1e-3
    spread = lambda r: np.percentile(20 * np.log10(r[keep]), 95) - np.percentile(20 * np.log10(r[keep]), 5)  # noqa: E731
    assert spread(loud_after) < spread(loud_before) - 2.0


def test_waveform_chain_keeps_length_and_onsets(piano):
    strong = A.AudioAugmentOptions(rt60_s=(1.0, 1.0), drr_db=(0.0, 0.0), p_reverb=1, p_noise=1, p_eq=1,
                                   p_compress=1, snr_db=(25, 25))
    out = A.augment_audio(piano, np.random.default_rng(0), strong)
    assert out.shape == piano.shape and out.dtype == np.float32
    assert not np.allclose(out, piano)
    # onsets every 0.25 s (5 frames) stay where they were: the spectral flux peaks
    # into the two frames whose windows first hold the onset (93 ms windows, 50 ms
    # hop), and dry and wet flux align at lag 0
    fluxes = [np.maximum(np.diff(spectrogram(x), axis=1), 0).sum(axis=0) for x in (piano, out)]
    for f in fluxes:
        phase = [np.median(f[np.arange(2, 47) * 5 + k]) for k in range(-2, 3)]
        assert np.argmax(phase) in (0, 1) and min(phase[:2]) > 1.5 * max(phase[2:])
    a, b = (f - f.mean() for f in fluxes)
    xcorr = [np.dot(a[5:-5], np.roll(b, lag)[5:-5]) for lag in range(-3, 4)]
    assert np.argmax(xcorr) == 3
    assert np.array_equal(A.augment_audio(piano, np.random.default_rng(5)),
                          A.augment_audio(piano, np.random.default_rng(5)))
    none = A.AudioAugmentOptions(p_reverb=0, p_noise=0, p_eq=0, p_compress=0)
    assert np.array_equal(A.augment_audio(piano, np.random.default_rng(0), none), piano)


def test_spectrogram_models_match_the_waveform_effects(piano):
    dry = spectrogram(piano)
    rng = np.random.default_rng(0)
    for k in range(3):  # the equalizer is exact up to the band's averaging
        sos = A.draw_eq(np.random.default_rng(k))
        corr, err = _compare(spectrogram(A.equalize(piano, sos)), _bands(A.equalize_bands, dry, sos), dry)
        assert corr > 0.95 and err < 0.2, (k, corr, err)
    for rt60, drr in ((0.8, 3.0), (1.5, -3.0)):
        room = A.Room(rt60, 0.6 * rt60, drr, 0.01)
        reference = spectrogram(A.reverb(piano, A.impulse_response(room, rng)))
        # the model has the mean effect; a draw's early reflections colour the
        # reference in ways a smooth decay cannot (corr 0.4-0.8 over draws)
        corr, err = _compare(reference, _bands(A.reverb_bands, dry, room), dry)
        ratio = (_bands(A.reverb_bands, dry, room) - dry).mean() / (reference - dry).mean()
        assert corr > 0.3 and err < 0.9 and 0.75 < ratio < 1.35, (rt60, corr, err, ratio)
    for snr, color in ((20.0, 0.0), (15.0, 2.0)):
        reference = spectrogram(A.add_noise(piano, np.random.default_rng(1), snr, color))
        model = _bands(A.noise_bands, dry, np.random.default_rng(2), snr, color)
        corr, err = _compare(reference, model, dry)
        ratio = (model - dry).mean() / (reference - dry).mean()
        assert corr > 0.3 and err < 1.0 and 0.6 < ratio < 1.6, (snr, color, corr, err, ratio)
    reference = spectrogram(A.compress(piano, -10.0, 3.0))
    corr, _ = _compare(reference, _bands(A.compress_bands, dry, -10.0, 3.0), dry)
    assert corr > 0.5


def test_spectrogram_chain_on_excerpts():
    rng = np.random.default_rng(0)
    excerpt = np.abs(rng.normal(0.3, 0.2, (92, 42))).astype(np.float32)
    out = A.augment_spectrogram(excerpt, np.random.default_rng(1),
                                A.AudioAugmentOptions(p_reverb=1, p_noise=1, p_eq=1, p_compress=1))
    assert out.shape == excerpt.shape and out.dtype == np.float32 and np.all(out >= 0)
    assert not np.allclose(out, excerpt)
    silence = np.zeros((92, 42), np.float32)
    assert np.array_equal(A.augment_spectrogram(silence, np.random.default_rng(1)), silence)
    none = A.AudioAugmentOptions(p_reverb=0, p_noise=0, p_eq=0, p_compress=0)
    assert np.array_equal(A.augment_spectrogram(excerpt, rng, none), excerpt)


def test_options_are_checked():
    for bad in ({"rt60_s": (1.0, 0.5)}, {"rt60_s": (0.0, 1.0)}, {"comp_ratio": (0.5, 2.0)}):
        with pytest.raises(ValueError):
            A.AudioAugmentOptions(**bad)

"""Humanized performances: the time map, the stages, the MIDI, and a real rendering."""

from __future__ import annotations

import base64
import io
import subprocess
import tempfile
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from audio_sheet_retrieval.audio.spectrogram import SR, log_filterbank, onset_frame, spectrogram
from audio_sheet_retrieval.build import perform as P
from audio_sheet_retrieval.build.midi import PEDAL_CC, read_note_events


def _chorale_like(n_bars: int = 16, beat_s: float = 0.5) -> np.ndarray:
    """Four-voice chords on every beat of 4/4 bars, (N, 5), sorted by onset then pitch."""
    rng = np.random.default_rng(1)
    rows = []
    for beat in range(4 * n_bars):
        root = 48 + int(rng.integers(0, 12))
        for k, p in enumerate(sorted({root, root + 7, root + 16, root + 24})):
            rows.append((beat * beat_s, p, beat_s, k // 2, 0))
    return np.array(rows, dtype=np.float64)


def _meter(n_bars: int = 16, beat_s: float = 0.5) -> P.Meter:
    return P.Meter(bars_s=np.arange(n_bars) * 4 * beat_s, beats_s=np.arange(4 * n_bars) * beat_s)


# --------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------


def test_time_map_is_strictly_monotone_and_starts_at_zero():
    events = _chorale_like()
    for seed in range(5):
        grid, ratio = P.tempo_curve(events, _meter(), np.random.default_rng(seed),
                                    P.HumanizeOptions(rubato_depth=0.5))
        performed = P.time_map(grid, ratio)
        assert performed[0] == 0.0 and np.all(np.diff(performed) > 0)
        t = np.linspace(-1.0, grid[-1] + 5.0, 5000)
        assert np.all(np.diff(P.warp_times(t, grid, performed)) > 0)
        # the slope of the map is the inverse local tempo
        slope = np.diff(performed) / np.diff(grid)
        assert np.allclose(slope, 0.5 * (1 / ratio[:-1] + 1 / ratio[1:]))


@pytest.mark.parametrize("tempo", [0.5, 1.0, 1.5])
def test_local_tempo_stays_inside_the_range_and_is_smooth(tempo):
    events = _chorale_like()
    options = P.HumanizeOptions(tempo_range=(0.9, 1.2), rubato_depth=1.0, phrase_ritardando=0.3,
                                final_ritardando=0.2)
    for seed in range(5):
        grid, ratio = P.tempo_curve(events, _meter(), np.random.default_rng(seed), options, tempo)
        assert ratio.min() >= 0.9 * tempo * (1 - 1e-12) and ratio.max() <= 1.2 * tempo * (1 + 1e-12)
        assert ratio.min() < 0.91 * tempo and ratio.max() > 1.19 * tempo  # the bounds matter here
        # smooth: no jump between neighbouring grid points (0.01 s); the ritardandi
        # here reach log(0.3) = -1.2, so a step would be far larger
        assert np.abs(np.diff(np.log(ratio))).max() < 0.05
        _, ratio = P.tempo_curve(events, _meter(), np.random.default_rng(seed), tempo=tempo)
        assert np.abs(np.diff(np.log(ratio))).max() < 0.01


def test_ritardando_at_phrase_ends_and_at_the_end():
    events = _chorale_like()
    meter = _meter()
    options = P.HumanizeOptions(rubato_depth=0.0, phrase_ritardando=0.85, final_ritardando=0.8)
    grid, ratio = P.tempo_curve(events, meter, np.random.default_rng(0), options)
    # phrases of 4 bars (8 s): slowest just before 8, 16, 24 s, a tempo in mid-phrase
    for end in (8.0, 16.0, 24.0):
        at = np.argmin(np.abs(grid - (end - 0.01)))
        assert ratio[at] < 0.95
    assert np.allclose(ratio[(grid % 8.0 > 1.0) & (grid % 8.0 < 5.5) & (grid < 26)], 1.0)
    last_onset = events[:, 0].max()
    assert ratio[grid >= last_onset].max() < 0.85


def test_rows_keep_their_notes_and_the_midi_plays_them_exactly():
    events = _chorale_like()
    perf = P.humanize(events, np.random.default_rng(3), meter=_meter())
    out = perf.note_events
    assert out.shape == events.shape
    assert np.array_equal(out[:, [1, 3, 4]], events[:, [1, 3, 4]])
    # every onset is the warped score onset plus a bounded deviation
    warped = P.warp_times(events[:, 0], perf.tempo_grid_s, perf.performed_grid_s)
    assert np.abs(out[:, 0] - warped).max() < 0.06
    assert not np.allclose(out[:, 0], events[:, 0], atol=0.05)  # the timing did change
    # the MIDI file plays exactly these onsets and durations (row order: perf.order)
    back = read_note_events(perf.to_midi())
    assert np.allclose(back[:, :3], out[perf.order, :3], atol=1e-9)


def test_chords_never_change_order_and_no_key_is_struck_while_down():
    events = _chorale_like()
    perf = P.humanize(events, np.random.default_rng(4), P.HumanizeOptions(onset_jitter_s=0.1),
                      meter=_meter())
    groups = P.chord_groups(events[:, 0])
    on = perf.note_events[:, 0]
    first = np.array([on[groups == g].min() for g in range(groups.max() + 1)])
    last = np.array([on[groups == g].max() for g in range(groups.max() + 1)])
    assert np.all(last[:-1] < first[1:])
    for evs in (perf.note_events, perf.sounding_events()):
        for p in np.unique(evs[:, 1]):
            rows = evs[evs[:, 1] == p]
            rows = rows[np.argsort(rows[:, 0])]
            assert np.all(rows[:-1, 0] + rows[:-1, 2] < rows[1:, 0])


def test_unisons_are_struck_apart_and_read_back_one_to_one():
    events = np.array([[0.0, 60, 1.0, 0, 0], [0.0, 60, 0.5, 1, 0], [0.0, 64, 1.0, 0, 0],
                       [1.0, 62, 1.0, 0, 0]], dtype=np.float64)
    perf = P.humanize(events, np.random.default_rng(0), meter=P.regular_meter(2.0))
    back = read_note_events(perf.to_midi())
    assert len(back) == 4
    assert np.allclose(back[:, :3], perf.note_events[perf.order, :3], atol=1e-9)


def test_pedal_events_are_valid_midi():
    events = _chorale_like()
    perf = P.humanize(events, np.random.default_rng(5), meter=_meter())
    pedal = perf.pedal
    assert len(pedal) >= 4 and len(pedal) % 2 == 0
    assert np.array_equal(pedal[:, 1], np.tile([127.0, 0.0], len(pedal) // 2))
    assert np.all(np.diff(pedal[:, 0]) > 0) and pedal[0, 0] > 0
    assert pedal[-1, 0] <= (perf.note_events[:, 0] + perf.note_events[:, 2]).max() + 1e-9
    assert np.allclose(pedal[:, 0] * P.TICKS_PER_S, np.round(pedal[:, 0] * P.TICKS_PER_S))
    mid = mido.MidiFile(file=io.BytesIO(perf.to_midi()))
    tick, seen = 0, []
    for msg in mid.tracks[0]:
        tick += msg.time
        if msg.type == "control_change" and msg.control == PEDAL_CC:
            seen.append((tick / P.TICKS_PER_S, msg.value))
    assert np.allclose(np.array(seen), pedal)


def test_pedal_changes_follow_the_harmony():
    # one harmony per bar, arpeggiated in 16ths, repeated in the second half of the bar
    rows = []
    chords = [(60, 64, 67), (62, 65, 69), (59, 62, 67), (60, 64, 67)]
    for bar, chord in enumerate(chords):
        for k in range(16):
            rows.append((bar * 2.0 + k * 0.125, chord[k % 3], 0.125, 0, 0))
    events = np.array(rows, dtype=np.float64)
    meter = P.Meter(bars_s=np.arange(4) * 2.0, beats_s=np.arange(16) * 0.5)
    assert np.allclose(P.harmony_changes(events, meter), [0.0, 2.0, 4.0, 6.0])
    # a harmony change within a bar is followed too
    events[8:16, 1] = 65
    assert np.allclose(P.harmony_changes(events, meter), [0.0, 1.0, 2.0, 4.0, 6.0])


def test_pedal_sustains_released_notes_until_the_lift():
    events = np.array([[0.0, 60, 0.2, 0, 0], [0.5, 64, 0.2, 0, 0], [1.0, 60, 0.2, 0, 0]])
    pedal = np.array([[0.1, 127], [0.9, 0]])
    out = P.pedal_release(events, pedal)
    assert np.allclose(out[:, 0] + out[:, 2], [0.9, 0.9, 1.2])  # the last: pedal up at release
    pedal = np.array([[0.1, 127], [2.0, 0]])
    out = P.pedal_release(events, pedal)
    assert np.isclose(out[0, 0] + out[0, 2], 1.0 - 1 / P.TICKS_PER_S)  # cut by the re-strike of 60
    assert np.isclose(out[2, 0] + out[2, 2], 2.0)


def test_dynamics_arch_per_phrase_and_louder_melody():
    events = _chorale_like()
    meter = _meter()
    flat = P.HumanizeOptions(phrase_level_sd=0.0, velocity_noise=0.0, melody_boost=0.0,
                             phrase_swell=30.0)
    v = P.dynamics(events, meter, np.random.default_rng(0), flat)
    phrase = (events[:, 0] // 8.0).astype(int)
    for k in range(phrase.max() + 1):
        vk = v[phrase == k]
        assert vk.max() > vk[0] + 5 and vk.max() > vk[-1] + 5  # crescendo, then diminuendo
    boost = P.HumanizeOptions(phrase_level_sd=0.0, velocity_noise=0.0, phrase_swell=0.0,
                              melody_boost=10.0)
    v = P.dynamics(events, meter, np.random.default_rng(0), boost)
    top = P.top_notes(events)
    assert top.sum() == 4 * 16 and np.all(v[top] == v[~top].max() + 10)
    loud = P.HumanizeOptions(velocity_mean=126, velocity_noise=30.0)
    v = P.dynamics(events, meter, np.random.default_rng(0), loud)
    assert v.min() >= 20 and v.max() <= 120


def test_same_seed_same_performance_other_seed_other_one():
    events = _chorale_like()
    a = P.humanize(events, np.random.default_rng(7), meter=_meter())
    b = P.humanize(events, np.random.default_rng(7), meter=_meter())
    c = P.humanize(events, np.random.default_rng(8), meter=_meter())
    assert a.to_midi() == b.to_midi() and a.to_midi() != c.to_midi()


def test_meter_from_midi_reads_time_signatures_and_tempo():
    mid = mido.MidiFile(ticks_per_beat=480)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0),
                           mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0),
                           mido.MetaMessage("time_signature", numerator=6, denominator=8, time=2 * 1440),
                           mido.MetaMessage("set_tempo", tempo=1000000, time=0)])
    notes = mido.MidiTrack([mido.Message("note_on", note=60, velocity=80, time=0),
                            mido.Message("note_off", note=60, velocity=0, time=2 * 1440 + 2 * 1440)])
    mid.tracks.extend([meta, notes])
    buf = io.BytesIO()
    mid.save(file=buf)
    meter = P.meter_from_midi(buf.getvalue())
    # two 3/4 bars of 1.5 s at 120 bpm, then 6/8 bars (6 eighths) at 60 bpm: 3 s each
    assert np.allclose(meter.bars_s, [0.0, 1.5, 3.0, 6.0])
    assert np.allclose(meter.beats_s[:7], [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    assert np.allclose(np.diff(meter.beats_s[6:]), 0.5)


def test_options_are_checked_and_named():
    assert P.HumanizeOptions().name == "human"
    other = P.HumanizeOptions(rubato_depth=0.1)
    assert other.name.startswith("human-") and other.name != P.HumanizeOptions(rubato_depth=0.2).name
    assert "_" not in other.name  # it ends a performance name: <piece>_tempo-<t>_<synth>_<name>
    for bad in ({"tempo_range": (1.1, 1.3)}, {"final_ritardando": 0.0},
                {"velocity_range": (0, 130)}, {"pedal_press_s": 0.01}, {"phrase_bars": 0}):
        with pytest.raises(ValueError):
            P.HumanizeOptions(**bad)
    with pytest.raises(ValueError):
        P.humanize(np.zeros((0, 5)), np.random.default_rng(0))


# --------------------------------------------------------------------------
# A real piece, a real synth, the spectrogram
# --------------------------------------------------------------------------


def _band_of_pitch() -> np.ndarray:
    """Spectrogram band nearest to each MIDI pitch's fundamental (128,)."""
    fb = log_filterbank()
    centres = np.fft.fftfreq(2048, 1.0 / SR)[:1024][fb.argmax(axis=0)]
    f0 = 440.0 * 2.0 ** ((np.arange(128) - 69) / 12.0)
    return np.abs(np.log2(f0[:, None] / centres[None, :])).argmin(axis=1)


def _rises(spec: np.ndarray, onsets_s: np.ndarray, pitches: np.ndarray) -> np.ndarray:
    """Whether each note's own band has more energy 1 frame after its onset frame than 2 before."""
    frame = onset_frame(onsets_s)
    ok = (frame >= 2) & (frame + 1 < spec.shape[1])
    band = _band_of_pitch()[pitches.astype(int)]
    return spec[band[ok], frame[ok] + 1] > spec[band[ok], frame[ok] - 2]


def _timidity(midi: bytes) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "in.mid").write_bytes(midi)
        subprocess.run(["timidity", "-c", "/etc/timidity/freepats.cfg", "-Ow", "-s", str(SR),
                        "-o", str(Path(tmp, "out.wav")), str(Path(tmp, "in.mid"))],
                       check=True, capture_output=True)
        y, sr = sf.read(str(Path(tmp, "out.wav")), dtype="float32", always_2d=True)
    assert sr == SR
    return y.mean(axis=1)


@pytest.fixture(scope="module")
def bwv846_opening():
    """The first 12 bars of bwv846, engraved by the project's verovio engraver, and its MIDI."""
    import verovio

    from audio_sheet_retrieval.build.engrave_verovio import VEROVIO_OPTIONS, engrave
    from audio_sheet_retrieval.build.sources import load_musicxml, resolve

    xml = load_musicxml(resolve(["bach/bwv846"])[0])
    engraved = engrave(xml)
    tk = verovio.toolkit()
    tk.setOptions(VEROVIO_OPTIONS)
    tk.loadData(xml)
    midi = base64.b64decode(tk.renderToMIDI())
    assert np.array_equal(read_note_events(midi), engraved.note_events)  # the MIDI it came from
    meter = P.meter_from_midi(midi)
    assert len(meter.bars_s) >= 30 and np.allclose(np.diff(meter.bars_s[:12]), 10 / 3, atol=1e-4)
    events = engraved.note_events[engraved.note_events[:, 0] < meter.bars_s[12] - 1e-6]
    return events, meter


@pytest.mark.parametrize("synth", ["FreepatsGrand", "FluidR3Grand"])
def test_real_rendering_sounds_at_the_warped_onsets(bwv846_opening, synth):
    from audio_sheet_retrieval.build.synth import render

    events, meter = bwv846_opening
    perf = P.humanize(events, np.random.default_rng(0), meter=meter)
    # FreepatsGrand (TiMidity) plays the performance MIDI: velocities and CC 64;
    # FluidR3Grand plays note events, so it gets the pedal-sustained durations
    audio = _timidity(perf.to_midi()) if synth == "FreepatsGrand" else render(synth, perf.sounding_events())
    spec = spectrogram(audio)
    pitches = events[:, 1]
    warped = _rises(spec, perf.note_events[:, 0], pitches)
    assert warped.mean() >= 0.95, f"own band rises at only {warped.mean():.1%} of the warped onsets"
    # the notes the rubato moved by more than 0.15 s (3 frames) are not heard at the score onsets
    moved = np.abs(perf.note_events[:, 0] - events[:, 0]) > 0.15
    assert moved.sum() >= 50
    unwarped = _rises(spec, events[moved, 0], pitches[moved])
    assert unwarped.mean() < 0.4, f"own band rises at {unwarped.mean():.1%} of the unwarped onsets"
    assert _rises(spec, perf.note_events[moved, 0], pitches[moved]).mean() >= 0.95

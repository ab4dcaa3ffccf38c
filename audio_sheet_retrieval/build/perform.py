"""Humanized performances of a score: rubato, onset jitter, dynamics, sustain pedal.

The engraver's note events play the score with metronomic precision, at one
loudness, without pedal. This module turns them into a performance a pianist
might give, as a chain of small stages, each a pure function of its inputs
and a seeded :class:`numpy.random.Generator`:

1. :func:`tempo_curve` draws a smooth local tempo over score time: slow
   sinusoids in log-tempo (rubato), a ritardando at every phrase end and a
   stronger one at the end of the piece, softly bounded to a ratio range;
2. :func:`time_map` integrates it into a strictly increasing map from score
   seconds to performed seconds (:func:`warp_times` applies it);
3. :func:`onset_offsets` adds a few milliseconds of jitter per chord and
   spreads the notes of a chord, the melody leading, never reordering chords;
4. :func:`dynamics` gives velocities: a crescendo-diminuendo arch and a
   level per phrase, the melody louder, per-note noise;
5. :func:`sustain_pedal` presses and lifts the sustain pedal (CC 64) at bar
   and harmony changes, legato-style (lift just after the new harmony's
   onset, press again a little later);
6. :func:`pedal_release` extends each sounding note to its pedal release,
   for synths that play note events only.

:func:`humanize` runs the chain. **Row ``i`` of the output note events is
row ``i`` of the input** (the same note), so whoever aligned noteheads to
the input rows re-times every notehead by reading the output row; the
performed onsets are quantized to the MIDI tick (1/960 s) so that
:meth:`Performance.to_midi` plays exactly those onsets. Score time is the
engraver's time at tempo ratio 1.0, in seconds; bars and beats come from the
engraver's MIDI (:func:`meter_from_midi`) or a regular grid
(:func:`regular_meter`).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mido
import numpy as np

from audio_sheet_retrieval.build.midi import TICKS_PER_S, write_midi

CHORD_TOL_S = 1e-3
"""Notes whose score onsets differ by less than this are one chord, in seconds."""
_TICK_S = 1.0 / TICKS_PER_S


@dataclass(frozen=True)
class HumanizeOptions:
    """How far a humanized performance departs from the score.

    Attributes
    ----------
    tempo_range : (float, float)
        Lowest and highest local tempo, as ratios of the nominal tempo
        (``lo < 1 < hi``); the curve is softly bounded into it (tanh).
    rubato_depth : float
        Standard deviation of the rubato in natural-log tempo (0.06: about
        6 % faster or slower).
    rubato_components : int
        Number of slow sinusoids summed into the rubato.
    phrase_bars : int
        Bars per phrase; phrase ends get a ritardando and phrases their own
        dynamics.
    phrase_ritardando : float
        Deepest tempo ratio of a phrase-final ritardando (drawn between this
        and halfway to 1 per phrase).
    final_ritardando : float
        Tempo ratio reached at the last note of the piece.
    ritardando_bars : float
        Length of a ritardando, in bars before the phrase end.
    onset_jitter_s : float
        Standard deviation of the timing noise shared by a chord, in seconds.
    chord_spread_s : float
        Width of the uniform spread of a chord's notes, in seconds.
    melody_lead_s : float
        How much earlier the top note of a chord sounds than the chord, in seconds.
    articulation : (float, float)
        Range of the key-down time as a fraction of the written duration.
    velocity_mean : float
        Mean MIDI velocity.
    phrase_level_sd : float
        Standard deviation of a phrase's loudness level, in velocity units.
    phrase_swell : float
        Height of a phrase's crescendo-diminuendo arch, in velocity units.
    melody_boost : float
        Velocity added to the top sounding note, in velocity units.
    velocity_noise : float
        Standard deviation of the per-note velocity noise.
    velocity_range : (int, int)
        Velocities are clipped into this range (1-127).
    pedal : bool
        Use the sustain pedal.
    pedal_change : float
        A beat starts a new harmony (and a pedal change) when the Jaccard
        overlap of its pitch classes with the current harmony's is below this.
    pedal_lift_s : float
        Delay of the pedal lift after a harmony change, in seconds.
    pedal_press_s : float
        Delay of the pedal press after a harmony change, in seconds.
    """

    tempo_range: tuple[float, float] = (0.8, 1.25)
    rubato_depth: float = 0.06
    rubato_components: int = 3
    phrase_bars: int = 4
    phrase_ritardando: float = 0.85
    final_ritardando: float = 0.8
    ritardando_bars: float = 1.0
    onset_jitter_s: float = 0.008
    chord_spread_s: float = 0.012
    melody_lead_s: float = 0.008
    articulation: tuple[float, float] = (0.85, 1.0)
    velocity_mean: float = 64.0
    phrase_level_sd: float = 8.0
    phrase_swell: float = 14.0
    melody_boost: float = 8.0
    velocity_noise: float = 4.0
    velocity_range: tuple[int, int] = (20, 120)
    pedal: bool = True
    pedal_change: float = 0.5
    pedal_lift_s: float = 0.015
    pedal_press_s: float = 0.09

    def __post_init__(self):
        lo, hi = self.tempo_range
        if not 0 < lo < 1 < hi:
            raise ValueError(f"tempo_range must satisfy 0 < lo < 1 < hi, got {self.tempo_range}")
        if not (0 < self.phrase_ritardando <= 1 and 0 < self.final_ritardando <= 1):
            raise ValueError("phrase_ritardando and final_ritardando are tempo ratios in (0, 1]")
        if not 0 < self.articulation[0] <= self.articulation[1]:
            raise ValueError(f"articulation must be 0 < lo <= hi, got {self.articulation}")
        if not 1 <= self.velocity_range[0] <= self.velocity_range[1] <= 127:
            raise ValueError(f"velocity_range must lie in 1..127, got {self.velocity_range}")
        if self.phrase_bars < 1 or self.rubato_components < 0:
            raise ValueError("phrase_bars must be >= 1 and rubato_components >= 0")
        if min(self.rubato_depth, self.onset_jitter_s, self.chord_spread_s, self.melody_lead_s,
               self.pedal_lift_s) < 0 or self.pedal_press_s <= self.pedal_lift_s:
            raise ValueError("depths and delays must be >= 0, and pedal_press_s > pedal_lift_s")

    @property
    def name(self) -> str:
        """Short name for performance names: ``human`` for the defaults,
        ``human-<6 hex digits of the options>`` otherwise."""
        if self == HumanizeOptions():
            return "human"
        text = json.dumps(asdict(self), sort_keys=True)
        return "human-" + hashlib.sha1(text.encode()).hexdigest()[:6]


@dataclass(frozen=True)
class Meter:
    """Bar and beat starts of a score, in score seconds.

    Attributes
    ----------
    bars_s : np.ndarray, shape (n_bars,)
        Start of every bar, increasing.
    beats_s : np.ndarray, shape (n_beats,)
        Start of every beat (the time signature's denominator unit), increasing.
    """

    bars_s: np.ndarray
    beats_s: np.ndarray


@dataclass
class Performance:
    """A humanized performance of note events.

    Attributes
    ----------
    note_events : np.ndarray, shape (N, 5), float64
        Performed onset (s), pitch, key-down duration (s), track, channel.
        Row ``i`` is row ``i`` of the score's note events; onsets and
        releases lie on the MIDI tick grid (1/960 s).
    velocities : np.ndarray, shape (N,), int64
        MIDI velocity of each note (1-127).
    pedal : np.ndarray, shape (M, 2), float64
        Sustain-pedal changes: time (s), CC 64 value (127 down, 0 up);
        alternating, starting down and ending up, times increasing.
    tempo_grid_s : np.ndarray, shape (K,)
        Score times at which the local tempo is sampled.
    tempo_ratio : np.ndarray, shape (K,)
        Local tempo there, as a ratio of the written tempo (nominal tempo
        included).
    performed_grid_s : np.ndarray, shape (K,)
        Performed time of each grid point (the time map before onset jitter).
    """

    note_events: np.ndarray
    velocities: np.ndarray
    pedal: np.ndarray
    tempo_grid_s: np.ndarray
    tempo_ratio: np.ndarray
    performed_grid_s: np.ndarray = field(repr=False)

    @property
    def order(self) -> np.ndarray:
        """Permutation sorting the rows by performed onset, then pitch, shape (N,).

        ``note_events[order]`` is what :func:`~audio_sheet_retrieval.build.midi.read_note_events`
        reads back from :meth:`to_midi`.
        """
        return np.lexsort((self.note_events[:, 1], np.round(self.note_events[:, 0], 6)))

    def sounding_events(self) -> np.ndarray:
        """Note events whose durations run on to the pedal release, shape (N, 5).

        For synths that play note events without pedal (see :func:`pedal_release`).
        """
        return pedal_release(self.note_events, self.pedal)

    def to_midi(self, program: int = 0, bank: int = 0) -> bytes:
        """The performance as a one-track standard MIDI file.

        Parameters
        ----------
        program : int
            General MIDI program (0 = acoustic grand piano).
        bank : int
            Bank select (controller 0).

        Returns
        -------
        bytes
            480 ticks per beat at 120 bpm (960 ticks per second), channel 0:
            note-ons with the velocities, note-offs, and the CC 64 changes.
        """
        return write_midi(self.note_events, program, bank, velocity=self.velocities, pedal=self.pedal)


# --------------------------------------------------------------------------
# Meter
# --------------------------------------------------------------------------


def _ticks_to_seconds(ticks: np.ndarray, tempo_ticks: np.ndarray, tempos_us: np.ndarray,
                      ticks_per_beat: int) -> np.ndarray:
    """Seconds of absolute ticks under a tempo map starting at tick 0."""
    seg_s = np.diff(tempo_ticks) * tempos_us[:-1] / 1e6 / ticks_per_beat
    start_s = np.concatenate([[0.0], np.cumsum(seg_s)])
    i = np.searchsorted(tempo_ticks, ticks, side="right") - 1
    return start_s[i] + (ticks - tempo_ticks[i]) * tempos_us[i] / 1e6 / ticks_per_beat


def meter_from_midi(midi: bytes | str | Path) -> Meter:
    """Bars and beats of a MIDI file, from its time signatures and tempo map.

    Parameters
    ----------
    midi : bytes or path
        The engraver's MIDI file (the one the note events were read from).

    Returns
    -------
    Meter
        Bars from tick 0 to the last event, in seconds; 4/4 where the file
        sets no time signature. An upbeat bar is counted as a full bar.
    """
    mid = mido.MidiFile(file=io.BytesIO(midi)) if isinstance(midi, bytes) else mido.MidiFile(str(midi))
    tempo_changes, signatures, end = {0: 500000}, {0: (4, 4)}, 0
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                tempo_changes[tick] = msg.tempo
            elif msg.type == "time_signature":
                signatures[tick] = (msg.numerator, msg.denominator)
        end = max(end, tick)
    tpb = mid.ticks_per_beat
    sig_ticks = sorted(signatures) + [end]
    bars, beats = [], []
    for start, stop in zip(sig_ticks[:-1], sig_ticks[1:]):
        num, den = signatures[start]
        beat = tpb * 4 / den
        beats.extend(np.arange(start, max(stop, start + 1), beat))
        bars.extend(np.arange(start, max(stop, start + 1), beat * num))
    t_ticks = np.array(sorted(tempo_changes), dtype=np.float64)
    tempos = np.array([tempo_changes[t] for t in sorted(tempo_changes)], dtype=np.float64)
    to_s = lambda t: _ticks_to_seconds(np.asarray(t, dtype=np.float64), t_ticks, tempos, tpb)  # noqa: E731
    return Meter(bars_s=np.unique(to_s(bars)), beats_s=np.unique(to_s(beats)))


def regular_meter(duration_s: float, bar_s: float = 2.0, beats_per_bar: int = 4) -> Meter:
    """A regular grid of bars, for scores without a meter.

    Parameters
    ----------
    duration_s : float
        Length to cover, in score seconds.
    bar_s : float
        Bar length, in seconds.
    beats_per_bar : int
    """
    bars = np.arange(0.0, max(duration_s, bar_s), bar_s)
    return Meter(bars_s=bars, beats_s=np.arange(0.0, max(duration_s, bar_s), bar_s / beats_per_bar))


# --------------------------------------------------------------------------
# Tempo
# --------------------------------------------------------------------------


def _soft_bound(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map log-ratios smoothly into ``(log lo, log hi)``; identity slope at 0."""
    up, down = np.log(hi), -np.log(lo)
    return np.where(x >= 0, up * np.tanh(x / up), down * np.tanh(x / down))


def _rise(s: np.ndarray, start: float, stop: float) -> np.ndarray:
    """Raised cosine from 0 at ``start`` to 1 at ``stop`` (0 before, 1 after)."""
    u = np.clip((s - start) / max(stop - start, 1e-9), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * u)


def phrase_starts(meter: Meter, phrase_bars: int, duration_s: float) -> np.ndarray:
    """Start of every phrase, in score seconds, shape (n_phrases,).

    Phrases are ``phrase_bars`` bars long; the first starts at 0.
    """
    starts = meter.bars_s[::phrase_bars]
    starts = starts[starts < duration_s]
    return np.unique(np.concatenate([[0.0], starts]))


def tempo_curve(note_events: np.ndarray, meter: Meter, rng: np.random.Generator,
                options: HumanizeOptions = HumanizeOptions(), tempo: float = 1.0,
                step_s: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """A smooth local tempo over score time.

    ``log r(s) = bound(rubato(s) - phrase ritardandi(s) - final ritardando(s))``:
    the rubato is a sum of ``rubato_components`` sinusoids with periods of
    one to four phrases and random phases, scaled to ``rubato_depth``; every
    phrase end slows down over ``ritardando_bars`` bars (raised cosine) and
    recovers over a quarter of that; the two bars before the last onset
    slow down to ``final_ritardando``, which holds to the end. ``bound`` maps
    smoothly into ``tempo_range``.

    Parameters
    ----------
    note_events : np.ndarray, shape (N, >=3)
        Score onset (s), pitch, duration (s), ...
    meter : Meter
    rng : numpy.random.Generator
    options : HumanizeOptions
    tempo : float
        Nominal tempo ratio (1.1 = 10 % faster than written); multiplies the curve.
    step_s : float
        Grid step, in score seconds.

    Returns
    -------
    grid_s : np.ndarray, shape (K,)
        Score times from 0 to one second past the last note-off.
    ratio : np.ndarray, shape (K,)
        Local tempo ratio there, within ``tempo * tempo_range``.
    """
    last_onset = float(note_events[:, 0].max())
    duration_s = float((note_events[:, 0] + note_events[:, 2]).max())
    grid = np.arange(0.0, duration_s + 1.0 + step_s, step_s)
    bar_s = float(np.median(np.diff(meter.bars_s))) if len(meter.bars_s) > 1 else 2.0
    phrase_s = bar_s * options.phrase_bars
    x = np.zeros_like(grid)
    if options.rubato_components and options.rubato_depth > 0:
        periods = phrase_s * 2.0 ** rng.uniform(0.0, 2.0, options.rubato_components)
        phases = rng.uniform(0, 2 * np.pi, options.rubato_components)
        amps = rng.uniform(0.5, 1.0, options.rubato_components)
        for a, p, ph in zip(amps, periods, phases):
            x += a * np.sin(2 * np.pi * grid / p + ph)
        x *= options.rubato_depth / np.sqrt(0.5 * np.sum(amps ** 2))
    rit_s = options.ritardando_bars * bar_s
    ends = phrase_starts(meter, options.phrase_bars, duration_s)[1:]
    for end in ends:
        if end >= last_onset - 2 * rit_s:
            continue  # the final ritardando takes over
        depth = -np.log(options.phrase_ritardando) * rng.uniform(0.5, 1.0)
        before = _rise(grid, end - rit_s, end)
        after = 1.0 - _rise(grid, end, end + rit_s / 4)
        x -= depth * np.where(grid < end, before, after)
    x -= -np.log(options.final_ritardando) * _rise(grid, last_onset - 2 * rit_s, last_onset)
    return grid, tempo * np.exp(_soft_bound(x, *options.tempo_range))


def time_map(grid_s: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Performed time of each grid point: the integral of ``1 / ratio``.

    Parameters
    ----------
    grid_s : np.ndarray, shape (K,)
        Increasing score times starting at 0, in seconds.
    ratio : np.ndarray, shape (K,)
        Local tempo ratio (> 0) at the grid points.

    Returns
    -------
    np.ndarray, shape (K,)
        Strictly increasing performed times, starting at 0 (trapezoid rule).
    """
    inv = 1.0 / ratio
    return np.concatenate([[0.0], np.cumsum(np.diff(grid_s) * 0.5 * (inv[:-1] + inv[1:]))])


def warp_times(times_s: np.ndarray, grid_s: np.ndarray, performed_s: np.ndarray) -> np.ndarray:
    """Map score times to performed times (piecewise linear, strictly increasing).

    Times outside the grid continue at the slope of the first or last grid step.

    Parameters
    ----------
    times_s : np.ndarray, shape (...)
        Score times, in seconds.
    grid_s, performed_s : np.ndarray, shape (K,)
        The time map (:func:`time_map`).

    Returns
    -------
    np.ndarray, shape (...)
    """
    t = np.asarray(times_s, dtype=np.float64)
    out = np.interp(t, grid_s, performed_s)
    first = (performed_s[1] - performed_s[0]) / (grid_s[1] - grid_s[0])
    last = (performed_s[-1] - performed_s[-2]) / (grid_s[-1] - grid_s[-2])
    out = np.where(t < grid_s[0], performed_s[0] + (t - grid_s[0]) * first, out)
    return np.where(t > grid_s[-1], performed_s[-1] + (t - grid_s[-1]) * last, out)


# --------------------------------------------------------------------------
# Timing of notes
# --------------------------------------------------------------------------


def chord_groups(onsets_s: np.ndarray, tol_s: float = CHORD_TOL_S) -> np.ndarray:
    """Chord index of each note: notes with (nearly) equal onsets share one.

    Parameters
    ----------
    onsets_s : np.ndarray, shape (N,)

    Returns
    -------
    np.ndarray, shape (N,), int64
        0 for the earliest chord, increasing with onset.
    """
    order = np.argsort(onsets_s, kind="stable")
    new = np.concatenate([[True], np.diff(onsets_s[order]) > tol_s])
    groups = np.empty(len(onsets_s), dtype=np.int64)
    groups[order] = np.cumsum(new) - 1
    return groups


def top_notes(note_events: np.ndarray) -> np.ndarray:
    """Whether each note is the highest one sounding at its onset, shape (N,) bool.

    Notes held from earlier onsets count; of several equal top pitches, all are top.
    """
    on, pitch, off = note_events[:, 0], note_events[:, 1], note_events[:, 0] + note_events[:, 2]
    out = np.zeros(len(on), dtype=bool)
    groups = chord_groups(on)
    for g in range(groups.max() + 1 if len(on) else 0):
        members = np.flatnonzero(groups == g)
        t = on[members[0]]
        sounding = (on <= t + CHORD_TOL_S) & (off > t + CHORD_TOL_S)
        out[members] = pitch[members] >= pitch[sounding | (groups == g)].max()
    return out


def onset_offsets(note_events: np.ndarray, warped_onsets_s: np.ndarray,
                  rng: np.random.Generator, options: HumanizeOptions = HumanizeOptions()) -> np.ndarray:
    """Timing deviation of each note from the warped score onset, in seconds.

    A chord shares one jitter (normal, ``onset_jitter_s``, cut at 2.5 sigma);
    its notes spread uniformly over ``chord_spread_s`` and its top note leads
    by ``melody_lead_s``. Each note stays within 40 % of the gap to the
    neighbouring chords, so chords never change order, and no onset is
    negative. Repeated pitches within a chord (unisons) are struck 2 ticks apart.

    Parameters
    ----------
    note_events : np.ndarray, shape (N, >=3)
        Score onset (s), pitch, duration (s), ...
    warped_onsets_s : np.ndarray, shape (N,)
        Performed onsets before the deviation (:func:`warp_times` of column 0).
    rng : numpy.random.Generator
    options : HumanizeOptions

    Returns
    -------
    np.ndarray, shape (N,)
    """
    n = len(note_events)
    groups = chord_groups(note_events[:, 0])
    n_groups = int(groups.max()) + 1 if n else 0
    chord_t = np.zeros(n_groups)
    chord_t[groups] = warped_onsets_s
    sd = options.onset_jitter_s
    shared = np.clip(rng.normal(0.0, 1.0, n_groups), -2.5, 2.5) * sd
    spread = rng.uniform(-0.5, 0.5, n) * options.chord_spread_s
    sizes = np.bincount(groups, minlength=n_groups)
    lead = np.where(top_notes(note_events) & (sizes[groups] > 1), options.melody_lead_s, 0.0)
    offsets = shared[groups] + np.where(sizes[groups] > 1, spread, 0.0) - lead
    gaps = np.diff(chord_t)
    lo = -np.minimum(np.concatenate([[np.inf], 0.4 * gaps]), chord_t)
    hi = np.concatenate([0.4 * gaps, [np.inf]])
    offsets = np.clip(offsets, lo[groups], hi[groups])
    # a key cannot be struck twice at once: separate unisons within a chord
    key = groups * 128 + note_events[:, 1].astype(np.int64)
    _, first, counts = np.unique(key, return_index=True, return_counts=True)
    for f, c in zip(first[counts > 1], counts[counts > 1]):
        same = np.flatnonzero(key == key[f])
        offsets[same] = offsets[same[0]] + 2 * _TICK_S * np.arange(c)
    return offsets


def quantize(times_s: np.ndarray) -> np.ndarray:
    """Times rounded to the MIDI tick grid (1/960 s)."""
    return np.round(np.asarray(times_s) * TICKS_PER_S) / TICKS_PER_S


def release_before_restrike(onsets_s: np.ndarray, offsets_s: np.ndarray, pitches: np.ndarray,
                            gap_s: float = _TICK_S) -> np.ndarray:
    """Release times cut so that a key is released before it is struck again.

    Parameters
    ----------
    onsets_s, offsets_s, pitches : np.ndarray, shape (N,)

    Returns
    -------
    np.ndarray, shape (N,)
        ``min(offset, next onset of the same pitch - gap_s)``, at least one
        ``gap_s`` after the onset.
    """
    out = np.asarray(offsets_s, dtype=np.float64).copy()
    order = np.lexsort((onsets_s, pitches))
    same_next = pitches[order][1:] == pitches[order][:-1]
    nxt = np.full(len(order), np.inf)
    nxt[:-1] = np.where(same_next, onsets_s[order][1:], np.inf)
    out[order] = np.minimum(out[order], nxt - gap_s)
    return np.maximum(out, onsets_s + gap_s)


# --------------------------------------------------------------------------
# Dynamics
# --------------------------------------------------------------------------


def dynamics(note_events: np.ndarray, meter: Meter, rng: np.random.Generator,
             options: HumanizeOptions = HumanizeOptions()) -> np.ndarray:
    """MIDI velocities: phrase arches and levels, a louder melody, noise.

    Each phrase gets a level (normal, ``phrase_level_sd``) and an arch of
    height ``phrase_swell`` times U(0.5, 1), peaking at 40-75 % of the phrase
    (crescendo, then diminuendo); top notes (:func:`top_notes`) get
    ``melody_boost``; every note normal noise of ``velocity_noise``.

    Parameters
    ----------
    note_events : np.ndarray, shape (N, >=3)
        Score onset (s), pitch, duration (s), ...
    meter : Meter
    rng : numpy.random.Generator
    options : HumanizeOptions

    Returns
    -------
    np.ndarray, shape (N,), int64
        Velocities within ``velocity_range``.
    """
    on = note_events[:, 0]
    duration = float((on + note_events[:, 2]).max()) if len(on) else 0.0
    starts = phrase_starts(meter, options.phrase_bars, duration)
    bounds = np.concatenate([starts, [max(duration, starts[-1] + 1e-3)]])
    k = np.clip(np.searchsorted(starts, on, side="right") - 1, 0, len(starts) - 1)
    level = rng.normal(0.0, options.phrase_level_sd, len(starts))
    height = options.phrase_swell * rng.uniform(0.5, 1.0, len(starts))
    peak = rng.uniform(0.4, 0.75, len(starts))
    u = np.clip((on - bounds[k]) / (bounds[k + 1] - bounds[k]), 0.0, 1.0)
    arch = np.where(u < peak[k], np.sin(0.5 * np.pi * u / peak[k]),
                    np.cos(0.5 * np.pi * (u - peak[k]) / (1.0 - peak[k])))
    v = (options.velocity_mean + level[k] + height[k] * (arch - 0.5)
         + options.melody_boost * top_notes(note_events)
         + rng.normal(0.0, options.velocity_noise, len(on)))
    return np.clip(np.round(v), *options.velocity_range).astype(np.int64)


# --------------------------------------------------------------------------
# Sustain pedal
# --------------------------------------------------------------------------


def harmony_changes(note_events: np.ndarray, meter: Meter, threshold: float = 0.5) -> np.ndarray:
    """Score times where the harmony changes: candidate pedal changes.

    The candidates are the beats (and the first onset); the notes starting
    within a beat give its pitch classes. A beat starts a new harmony when
    it starts a bar, or when the Jaccard overlap of its pitch classes with
    those of the current harmony's first beat is below ``threshold``; beats
    without onsets never do.

    Parameters
    ----------
    note_events : np.ndarray, shape (N, >=2)
        Score onset (s), pitch, ...
    meter : Meter
    threshold : float

    Returns
    -------
    np.ndarray, shape (n_changes,)
        Increasing score times (the first onset first).
    """
    on, pc = note_events[:, 0], note_events[:, 1].astype(np.int64) % 12
    first = float(on.min())
    beats = np.unique(np.concatenate([[first], meter.beats_s[meter.beats_s > first + CHORD_TOL_S]]))
    beat_of = np.searchsorted(beats, on + CHORD_TOL_S, side="right") - 1
    classes = np.zeros((len(beats), 12), dtype=bool)
    classes[beat_of, pc] = True
    bar_starts = np.isin(np.round(beats, 6), np.round(meter.bars_s, 6))
    changes, current = [0], classes[0]
    for b in range(1, len(beats)):
        if not classes[b].any():
            continue
        overlap = (classes[b] & current).sum() / (classes[b] | current).sum()
        if bar_starts[b] or overlap < threshold:
            changes.append(b)
            current = classes[b]
    return beats[changes]


def sustain_pedal(change_points_s: np.ndarray, end_s: float,
                  options: HumanizeOptions = HumanizeOptions()) -> np.ndarray:
    """Legato pedalling: lift just after each harmony change, press again shortly after.

    Parameters
    ----------
    change_points_s : np.ndarray, shape (C,)
        Performed times of the harmony changes (increasing), in seconds.
    end_s : float
        Performed time of the final lift (the last key release), in seconds.
    options : HumanizeOptions

    Returns
    -------
    np.ndarray, shape (M, 2)
        Time (s), CC 64 value: 127 (down) and 0 (up) alternating, starting
        down and ending up, on the MIDI tick grid with strictly increasing
        times. A change whose lift would come less than ``pedal_press_s``
        after the previous press, or whose press would come at the end, is
        skipped; empty without change points.
    """
    events: list[tuple[float, int]] = []
    last_press = end_s - 2 * _TICK_S
    for c in np.asarray(change_points_s, dtype=np.float64):
        if c + options.pedal_press_s >= last_press:
            break
        if not events:
            events.append((c + options.pedal_press_s, 127))
            continue
        if c + options.pedal_lift_s < events[-1][0] + options.pedal_press_s:
            continue
        events.append((c + options.pedal_lift_s, 0))
        events.append((c + options.pedal_press_s, 127))
    if events:
        events.append((end_s, 0))
    out = np.array(events, dtype=np.float64).reshape(-1, 2)
    out[:, 0] = quantize(out[:, 0])
    return out


def pedal_release(note_events: np.ndarray, pedal: np.ndarray) -> np.ndarray:
    """Note events whose sound runs on while the pedal holds it.

    A note released while the pedal is down sounds until the pedal is
    lifted, or until its key is struck again, whichever is first.

    Parameters
    ----------
    note_events : np.ndarray, shape (N, 5)
        Onset (s), pitch, key-down duration (s), track, channel.
    pedal : np.ndarray, shape (M, 2)
        Pedal changes (:func:`sustain_pedal`).

    Returns
    -------
    np.ndarray, shape (N, 5)
        The same rows with durations to the end of the sound.
    """
    out = np.array(note_events, dtype=np.float64, copy=True)
    if len(pedal) == 0 or len(out) == 0:
        return out
    on, release = out[:, 0], out[:, 0] + out[:, 2]
    idx = np.searchsorted(pedal[:, 0], release, side="right") - 1
    held = (idx >= 0) & (pedal[np.maximum(idx, 0), 1] >= 64)
    ups = pedal[pedal[:, 1] < 64, 0]
    lift = ups[np.minimum(np.searchsorted(ups, release, side="left"), len(ups) - 1)]
    end = np.where(held, np.maximum(lift, release), release)
    end = release_before_restrike(on, end, out[:, 1])
    out[:, 2] = np.maximum(end, release) - on
    return out


# --------------------------------------------------------------------------
# MIDI
# --------------------------------------------------------------------------



# --------------------------------------------------------------------------
# The chain
# --------------------------------------------------------------------------


def humanize(note_events: np.ndarray, rng: np.random.Generator,
             options: HumanizeOptions = HumanizeOptions(), meter: Meter | None = None,
             tempo: float = 1.0) -> Performance:
    """A humanized performance of a score's note events.

    Parameters
    ----------
    note_events : np.ndarray, shape (N, 5)
        The engraver's note events at tempo 1.0: onset (s), pitch, duration
        (s), track, channel.
    rng : numpy.random.Generator
        Source of all randomness (same seed, same performance).
    options : HumanizeOptions
    meter : Meter, optional
        Bars and beats (:func:`meter_from_midi` of the engraver's MIDI); a
        regular grid of 2-second bars when None.
    tempo : float
        Nominal tempo ratio (the builder's tempo; 1.1 = 10 % faster).

    Returns
    -------
    Performance
        Row ``i`` of ``Performance.note_events`` is row ``i`` of
        ``note_events``, performed.

    Raises
    ------
    ValueError
        If there are no note events or ``tempo`` is not positive.
    """
    events = np.asarray(note_events, dtype=np.float64)
    if events.ndim != 2 or events.shape[1] != 5 or len(events) == 0:
        raise ValueError(f"note_events must be a non-empty (N, 5) array, got shape {events.shape}")
    if tempo <= 0:
        raise ValueError(f"tempo must be positive, got {tempo}")
    on, pitch, dur = events[:, 0], events[:, 1], events[:, 2]
    duration = float((on + dur).max())
    meter = meter if meter is not None else regular_meter(duration)
    grid, ratio = tempo_curve(events, meter, rng, options, tempo)
    performed = time_map(grid, ratio)
    warped_on = warp_times(on, grid, performed)
    warped_dur = warp_times(on + dur, grid, performed) - warped_on
    onsets = quantize(warped_on + onset_offsets(events, warped_on, rng, options))
    key_down = warped_dur * rng.uniform(*options.articulation, len(events))
    releases = quantize(release_before_restrike(onsets, onsets + np.maximum(key_down, 0.02), pitch))
    out = events.copy()
    out[:, 0], out[:, 2] = onsets, releases - onsets
    velocities = dynamics(events, meter, rng, options)
    pedal = np.zeros((0, 2))
    if options.pedal:
        changes = warp_times(harmony_changes(events, meter, options.pedal_change), grid, performed)
        pedal = sustain_pedal(changes, float(releases.max()), options)
    return Performance(note_events=out, velocities=velocities, pedal=pedal,
                       tempo_grid_s=grid, tempo_ratio=ratio, performed_grid_s=performed)

"""MIDI files <-> note-event arrays (onset s, pitch, duration s, track, channel)."""

from __future__ import annotations

import io
from pathlib import Path

import mido
import numpy as np

NOTE_COLUMNS = ("onset_s", "pitch", "duration_s", "track", "channel")


TICKS_PER_BEAT = 480
MIDI_TEMPO_US = 500000
"""The tempo of every MIDI file written here: 120 bpm (timing lives in the note times)."""
TICKS_PER_S = TICKS_PER_BEAT * 1e6 / MIDI_TEMPO_US
PEDAL_CC = 64
"""Sustain pedal controller."""

def tick_to_seconds(mid: mido.MidiFile):
    """Return a function mapping absolute ticks to seconds under the file's tempo map."""
    changes = []  # (tick, tempo in microseconds per beat) from every track
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                changes.append((tick, msg.tempo))
    changes.sort()
    ticks, tempos, secs = [0], [500000], [0.0]
    for tick, tempo in changes:
        secs.append(secs[-1] + (tick - ticks[-1]) * tempos[-1] / 1e6 / mid.ticks_per_beat)
        ticks.append(tick)
        tempos.append(tempo)
    ticks_a, tempos_a, secs_a = np.array(ticks), np.array(tempos), np.array(secs)

    def convert(tick: int) -> float:
        i = np.searchsorted(ticks_a, tick, side="right") - 1
        return float(secs_a[i] + (tick - ticks_a[i]) * tempos_a[i] / 1e6 / mid.ticks_per_beat)

    return convert


def read_note_events(midi: bytes | str | Path) -> np.ndarray:
    """Note events of a MIDI file.

    Parameters
    ----------
    midi : bytes or path
        A standard MIDI file, as bytes or a path.

    Returns
    -------
    np.ndarray, shape (N, 5), float64
        Onset (s), pitch, duration (s), track, channel; sorted by onset, pitch.
    """
    mid = mido.MidiFile(file=io.BytesIO(midi)) if isinstance(midi, bytes) else mido.MidiFile(str(midi))
    to_s = tick_to_seconds(mid)
    events = []
    for track_idx, track in enumerate(mid.tracks):
        tick, active = 0, {}
        for msg in track:
            tick += msg.time
            if msg.type not in ("note_on", "note_off"):
                continue
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                active.setdefault(key, []).append(tick)
            elif active.get(key):
                start = active[key].pop(0)
                onset = to_s(start)
                events.append((onset, msg.note, to_s(tick) - onset, track_idx, msg.channel))
    out = np.array(sorted(events, key=lambda e: (round(e[0], 6), e[1])), dtype=np.float64)
    return out.reshape(-1, 5)


def end_time_s(note_events: np.ndarray) -> float:
    """When the last note ends: ``max(onset + duration)``, in seconds (0 without notes).

    Not the end of the last note by onset: an earlier note can be held longer.

    Parameters
    ----------
    note_events : np.ndarray, shape (N, >=3)
        Onset (s), pitch, duration (s), ...
    """
    if len(note_events) == 0:
        return 0.0
    return float(np.max(note_events[:, 0] + note_events[:, 2]))


def write_midi(note_events: np.ndarray, program: int = 0, bank: int = 0,
               velocity: int | np.ndarray = 80, pedal: np.ndarray | None = None) -> bytes:
    """A one-track MIDI file playing ``note_events`` on one instrument.

    Parameters
    ----------
    note_events : np.ndarray, shape (N, >=3)
        Onset (s), pitch, duration (s), ...
    program : int
        General MIDI program (0 = acoustic grand piano, 4 = electric piano).
    bank : int
        Bank select (controller 0).
    velocity : int or np.ndarray, shape (N,)
        Note-on velocity (1-127) of every note, or one per note.
    pedal : np.ndarray, shape (M, 2), optional
        Sustain-pedal changes: time (s), controller-64 value.

    Returns
    -------
    bytes
        The MIDI file (:data:`TICKS_PER_BEAT` ticks per beat at 120 bpm, so
        :data:`TICKS_PER_S` ticks per second), channel 0. At equal ticks:
        note-offs, then pedal changes, then note-ons.
    """
    velocities = np.broadcast_to(np.asarray(velocity, dtype=int), (len(note_events),))
    msgs = []
    for (onset, pitch, dur), vel in zip(note_events[:, :3], velocities):
        on = int(round(onset * TICKS_PER_S))
        off = max(on + 1, int(round((onset + dur) * TICKS_PER_S)))
        msgs.append((on, 2, mido.Message("note_on", note=int(pitch), velocity=int(vel))))
        msgs.append((off, 0, mido.Message("note_off", note=int(pitch), velocity=0)))
    for t, value in (pedal if pedal is not None else ()):
        msgs.append((int(round(t * TICKS_PER_S)), 1,
                     mido.Message("control_change", control=PEDAL_CC, value=int(value))))
    msgs.sort(key=lambda m: (m[0], m[1]))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=MIDI_TEMPO_US, time=0),
                            mido.Message("control_change", control=0, value=bank, time=0),
                            mido.Message("program_change", program=program, time=0)])
    now = 0
    for tick, _, msg in msgs:
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    mid = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(track)
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()

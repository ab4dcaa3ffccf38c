"""Fidelity checks of a built piece: the notation, the MIDI and the audio must agree.

The builder reads a score (and maybe reduces it to a piano grand staff), has
an engraver lay it out and play it as MIDI, and synthesizes that MIDI. Each
step can lose or invent music without any error: a reduction that stacks two
voices of one part into one voice (overfull bars, notes shifted by minutes), a
tempo marking left behind (the piece plays at 120 bpm), a performance cut
short. These checks compare what the score says, read again from the
original file with music21 (the parts the reduction takes, the written tempo
marks), with the engraver's MIDI and page layout, and each performance's
spectrogram with its note events; a disagreement raises
:class:`FidelityError` naming the piece and what disagreed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio_sheet_retrieval.audio.spectrogram import FPS
from audio_sheet_retrieval.build.engraving import EngravedScore
from audio_sheet_retrieval.build.midi import end_time_s
from audio_sheet_retrieval.build.sources import (
    PieceSource,
    is_ensemble_score,
    parse_score,
    pick_four_parts,
)
from audio_sheet_retrieval.data.layout import feature_path
from audio_sheet_retrieval.errors import AsrError

NOTE_TOLERANCE = 0.005
"""Largest relative difference of note counts, beyond the notes LilyPond merges
(verovio reads a few grace notes and ties of kern scores differently: +4 of 4,042
notes in Beethoven op. 18/1 i)."""
DURATION_TOLERANCE = 0.03
DURATION_TOLERANCE_S = 1.0
"""Largest difference of durations: 3 % or 1 s, whichever is larger. verovio
starts a tempo change written inside a measure at the measure's start (BWV 846
ends 3.5 s, 2.9 %, later than written)."""
TAIL_TOLERANCE_S = 5.0
"""Largest sound after the last note-off, in seconds (plus 3 %): FluidSynth renders a
1 s release tail, TiMidity renders until its voices have died away (2 s for a low note)."""


class FidelityError(AsrError, ValueError):
    """What was built does not agree with the score (names the piece and the difference)."""


@dataclass(frozen=True)
class NotationSummary:
    """What a score says, as the builder must reproduce it.

    Attributes
    ----------
    notes : int
        Sounding notes: printed notes and chord tones one by one, grace notes
        included, tie continuations not.
    end_s : float
        End of the last sounding note at the written tempi, in seconds
        (120 quarter notes per minute until the first tempo marking).
    measures : int
        Measures of the first staff.
    clashes : int
        Sounding notes that start together with, or while, a note of the
        same pitch sounds on the same staff: LilyPond's MIDI, one channel
        per staff, plays no second note of a pitch that sounds already.
    padding_s : float
        Seconds by which the inner measures are shorter than their time
        signature (a bar split by a repeat sign): verovio plays each of
        them as a full bar, so its MIDI may end that much later.
    tremolo_notes : int
        Notes a single-note tremolo adds when it is played as the repeated
        notes it stands for (verovio does; a quarter with three strokes is
        eight 32nd notes, seven more than its notehead).
    """

    notes: int
    end_s: float
    measures: int
    clashes: int = 0
    padding_s: float = 0.0
    tremolo_notes: int = 0


def _seconds(spans: list[tuple[float, float, float]], quarters: float) -> float:
    """Seconds from the start to ``quarters`` under ``(start, end, quarter_bpm)`` spans.

    Spans are sorted and contiguous (music21's ``metronomeMarkBoundaries``);
    past the last one its tempo goes on (120 bpm without any).
    """
    seconds, covered = 0.0, 0.0
    for start, end, bpm in spans:
        overlap = min(end, quarters) - max(start, covered)
        if overlap > 0:
            seconds += overlap * 60.0 / bpm
            covered = min(end, quarters)
    last_bpm = spans[-1][2] if spans else 120.0
    return seconds + max(quarters - covered, 0.0) * 60.0 / last_bpm


def summarize_score(score, staves: list[list]) -> NotationSummary:
    """Notes, end time, measures and same-pitch clashes of the played parts of a music21 score.

    Parameters
    ----------
    score : music21.stream.Score
        The whole score (its tempo markings are read from every part).
    staves : list of list of music21.stream.Part
        The parts that are played, by the staff they are engraved on (the
        reduction puts two parts on each staff).
    """
    notes, end_q, clashes, tremolo_notes = 0, 0.0, 0, 0
    for staff in staves:
        sounding = []  # (start, end, pitch) in quarter notes
        for part in staff:
            for el in part.flatten().notes:
                if el.style.hideObjectOnPrint:
                    continue  # not printed: playback material the builder leaves out
                start, end = float(el.offset), float(el.offset + el.quarterLength)
                strokes = [x.numberOfMarks for x in el.expressions
                           if type(x).__name__ == "Tremolo"]
                repeats = max(1, int(round((end - start) * 2 ** strokes[0]))) if strokes else 1
                for tone in (list(el.notes) if el.isChord else [el]):
                    tie = tone.tie if tone.tie is not None else el.tie
                    if tie is not None and tie.type in ("stop", "continue"):
                        continue
                    sounding.append((start, end, int(round(tone.pitch.ps))))
                    tremolo_notes += repeats - 1
                end_q = max(end_q, end)
        notes += len(sounding)
        last: dict[int, tuple[float, float]] = {}  # pitch -> (latest start, latest end)
        for start, end, pitch in sorted(sounding):
            if pitch in last and (start == last[pitch][0] or start < last[pitch][1] - 1e-9):
                clashes += 1
            prev = last.get(pitch, (start, end))
            last[pitch] = (start, max(end, prev[1]))
    spans = [(float(s), float(e), float(m.getQuarterBPM()))
             for s, e, m in score.metronomeMarkBoundaries() if m.getQuarterBPM()]
    bars = list(staves[0][0].getElementsByClass("Measure")) if staves else []
    padding_s = 0.0
    for bar in bars[1:-1]:  # the first (a pickup) and the last are played as written
        start, short = float(bar.offset), float(bar.barDuration.quarterLength - bar.duration.quarterLength)
        if short > 1e-9:
            padding_s += _seconds(spans, start + short) - _seconds(spans, start)
    return NotationSummary(notes=notes, end_s=_seconds(spans, end_q), measures=len(bars),
                           clashes=clashes, padding_s=padding_s, tremolo_notes=tremolo_notes)


def summarize_source(source: PieceSource) -> NotationSummary | None:
    """What the original score of ``source`` says, as built (reduced or not).

    ``None`` for a LilyPond file (music21 cannot read it).
    """
    if source.is_lilypond:
        return None
    score = parse_score(source.path)
    if source.reduce and is_ensemble_score(score):
        s, a, t, b = pick_four_parts(list(score.parts))
        return summarize_score(score, [[s, a], [t, b]])
    return summarize_score(score, [[part] for part in score.parts])


def _differ(built: float, expected: float, rel: float, absolute: float) -> bool:
    return abs(built - expected) > max(absolute, rel * abs(expected))


def check_engraving(source: PieceSource, engraved: EngravedScore,
                    expected: NotationSummary | None = None) -> NotationSummary | None:
    """Raise :class:`FidelityError` unless the engraving and its MIDI say what the score says.

    Compared: the MIDI's notes with the score's sounding notes (LilyPond
    plays no second note of a pitch that sounds on the staff), the MIDI's
    end with the score's end at its written tempi (verovio fills bars split
    by a repeat sign), the engraved measures with the score's, and the
    noteheads that start a sound with the MIDI.

    Parameters
    ----------
    source : PieceSource
    engraved : EngravedScore
        The engraver's output for ``source``.
    expected : NotationSummary, optional
        What the score says (default: :func:`summarize_source`).

    Returns
    -------
    NotationSummary or None
        ``expected``, for a LilyPond file ``None``.
    """
    expected = summarize_source(source) if expected is None else expected
    events = engraved.note_events
    n_midi, midi_end = len(events), end_time_s(events)
    n_heads = sum(h.onset_s is not None for h in engraved.noteheads)
    problems = []
    repeated = expected.tremolo_notes if expected is not None and engraved.engraver == "verovio" else 0
    if expected is not None:
        merged = expected.clashes if engraved.engraver == "lilypond" else 0
        slack = int(NOTE_TOLERANCE * expected.notes)
        if not expected.notes - merged - slack <= n_midi - repeated <= expected.notes + slack:
            problems.append(f"the MIDI has {n_midi} notes, the score {expected.notes}"
                            + (f" (LilyPond may merge {merged})" if merged else ""))
        tolerance = max(DURATION_TOLERANCE_S, DURATION_TOLERANCE * expected.end_s)
        padded = expected.padding_s if engraved.engraver == "verovio" else 0.0
        if not expected.end_s - tolerance <= midi_end <= expected.end_s + padded + tolerance:
            problems.append(f"the MIDI lasts {midi_end:.1f} s, the score at its tempi "
                            f"{expected.end_s:.1f} s" + (f" (+{padded:.1f} s of split bars)"
                                                        if padded else ""))
        if engraved.measures is not None and engraved.measures != expected.measures:
            problems.append(f"{engraved.measures} measures engraved, the score has "
                            f"{expected.measures}")
    if _differ(n_heads, n_midi - repeated, NOTE_TOLERANCE, 1):
        problems.append(f"{n_heads} engraved noteheads start a note, the MIDI has {n_midi} notes"
                        + (f" ({repeated} repeated in tremolos)" if repeated else ""))
    if problems:
        raise FidelityError(f"{source.name}: built music differs from the score ("
                            + "; ".join(problems) + f"; engraver {engraved.engraver})")
    return expected


def check_performances(name: str, performances: Path, note_events: np.ndarray,
                       tempi: dict[str, float]) -> None:
    """Raise :class:`FidelityError` unless every performance plays all of ``note_events``.

    Each performance's note events must be the piece's at its tempo, and its
    spectrogram must last until its last note ends and not much longer
    (``TAIL_TOLERANCE_S``).

    Parameters
    ----------
    name : str
        Piece name (for the message).
    performances : Path
        The piece's ``performances`` folder.
    note_events : np.ndarray, shape (N, 5)
        The piece's note events at tempo 1.0 (onset s, pitch, duration s, ...).
    tempi : dict of str to float
        Tempo ratio of each performance folder name.
    """
    problems = []
    for perf, tempo in tempi.items():
        notes = np.load(feature_path(performances / perf, "notes"))
        spec = np.load(feature_path(performances / perf, "spec"), mmap_mode="r")
        want = note_events[:, :3].astype(np.float64) / [tempo, 1.0, tempo]
        if notes.shape[0] != len(note_events):
            problems.append(f"{perf} plays {notes.shape[0]} notes, the MIDI {len(note_events)}")
            continue
        if not np.allclose(notes[:, :3], want, atol=1e-6):
            problems.append(f"{perf} plays other notes than the MIDI at tempo {tempo}")
            continue
        sound_s, end_s = spec.shape[1] / FPS, end_time_s(want)
        if not end_s <= sound_s + 1.0 / FPS <= end_s * (1 + DURATION_TOLERANCE) + TAIL_TOLERANCE_S:
            problems.append(f"{perf} lasts {sound_s:.1f} s for notes ending at {end_s:.1f} s")
    if problems:
        raise FidelityError(f"{name}: performances differ from the MIDI (" + "; ".join(problems) + ")")

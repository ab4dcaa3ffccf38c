"""Aligning engraved noteheads to MIDI note events."""

from __future__ import annotations

import numpy as np

from audio_sheet_retrieval.build.engraving import Notehead

ONSET_TOLERANCE_S = 0.02
"""Largest onset difference between a notehead and its note event, in seconds."""


def match_noteheads(noteheads: list[Notehead], note_events: np.ndarray,
                    tol_s: float = ONSET_TOLERANCE_S) -> np.ndarray:
    """Index of each notehead's note event, or -1.

    A head with an onset is matched to the unused note event of the same pitch
    whose onset is nearest and within ``tol_s``; heads without onsets (tie
    continuations) and heads with no such event stay -1.

    Parameters
    ----------
    noteheads : list of Notehead
    note_events : np.ndarray, shape (N, >=2)
        Onset (s), pitch, ...

    Returns
    -------
    np.ndarray, shape (len(noteheads),), int64
    """
    out = np.full(len(noteheads), -1, dtype=np.int64)
    used = np.zeros(len(note_events), dtype=bool)
    by_pitch: dict[int, np.ndarray] = {}
    for pitch in np.unique(note_events[:, 1]).astype(int):
        by_pitch[pitch] = np.flatnonzero(note_events[:, 1] == pitch)
    order = sorted((i for i, h in enumerate(noteheads) if h.onset_s is not None),
                   key=lambda i: noteheads[i].onset_s)
    for i in order:
        cands = by_pitch.get(noteheads[i].pitch)
        if cands is None:
            continue
        free = cands[~used[cands]]
        if len(free) == 0:
            continue
        dist = np.abs(note_events[free, 0] - noteheads[i].onset_s)
        j = int(np.argmin(dist))
        if dist[j] <= tol_s:
            out[i] = free[j]
            used[free[j]] = True
    return out

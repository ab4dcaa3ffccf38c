"""What an engraver hands to the builder: page images, noteheads, systems, MIDI.

Every engraver (verovio, LilyPond) returns an :class:`EngravedScore`; the rest
of the builder never knows which one made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PAGE_WIDTH_PX = 835
"""Width of a rasterized page, in pixels (MSMD's page width)."""


@dataclass
class Notehead:
    """One engraved notehead.

    Attributes
    ----------
    page : int
        0-based page index.
    top, left, height, width : float
        Bounding box of the head, in page pixels.
    pitch : int
        MIDI pitch.
    onset_s : float or None
        Written onset at tempo ratio 1.0, in seconds; ``None`` for heads that
        start no sound (tie continuations).
    staff : int
        1-based staff number within the system (1 = top).
    filled : bool
        Black head (quarter and shorter) rather than a hollow one.
    ref : str
        The engraver's identifier of the note (verovio id, LilyPond line:col).
    """

    page: int
    top: float
    left: float
    height: float
    width: float
    pitch: int
    onset_s: float | None
    staff: int = 1
    filled: bool = True
    ref: str = ""

    @property
    def center(self) -> tuple[float, float]:
        """(row, column) of the head's centre, in page pixels."""
        return self.top + self.height / 2.0, self.left + self.width / 2.0


@dataclass
class System:
    """A staff system (all staves joined by a brace), in page pixels."""

    page: int
    top: float
    left: float
    bottom: float
    right: float
    staff_lines: list[float] = field(default_factory=list)
    """Rows of the system's staff lines, top to bottom, in page pixels."""


@dataclass
class EngravedScore:
    """The engraver's output for one piece.

    Attributes
    ----------
    pages : list of np.ndarray
        Grayscale uint8 page images, ``PAGE_WIDTH_PX`` wide, white = 255.
    noteheads : list of Notehead
    systems : list of System
        Sorted by page, then top.
    note_events : np.ndarray, shape (N, 5)
        The engraver's own MIDI rendering at tempo 1.0: onset (s), pitch,
        duration (s), track, channel; sorted by onset then pitch.
    engraver : str
        ``"verovio"`` or ``"lilypond"``.
    source : str
        The engraver's input text (MusicXML, LilyPond) kept beside the piece.
    source_suffix : str
        File suffix of ``source`` (``.musicxml``, ``.ly``).
    measures : int or None
        Measures engraved (of the first staff); ``None`` where the engraver
        does not say.
    """

    pages: list[np.ndarray]
    noteheads: list[Notehead]
    systems: list[System]
    note_events: np.ndarray
    engraver: str
    source: str = ""
    source_suffix: str = ".txt"
    measures: int | None = None

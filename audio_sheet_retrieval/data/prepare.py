"""A piece ready for sampling: its unrolled strip and, per performance, onset frame -> strip x."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from audio_sheet_retrieval.data.msmd import Piece
from audio_sheet_retrieval.data.mung import NOTEHEAD_CLASSES
from audio_sheet_retrieval.data.unroll import STRIP_HEIGHT, SystemBox, Unrolled, unroll_systems
from audio_sheet_retrieval.errors import AsrError

SYSTEM_CLASSES = ("system", "staff")


@dataclass
class PerformanceData:
    """One performance's spectrogram and its aligned onsets.

    Attributes
    ----------
    name : str
    synth : str
    tempo : float
    spec : np.ndarray, shape (bins, frames)
        Memory-mapped spectrogram.
    frames : np.ndarray, shape (K,)
        Onset frames with at least one aligned notehead, increasing.
    xs : np.ndarray, shape (K,)
        Strip column of the noteheads sounding at each frame (median), pixels.
    """

    name: str
    synth: str
    tempo: float
    spec: np.ndarray
    frames: np.ndarray
    xs: np.ndarray


@dataclass
class PreparedPiece:
    """The unrolled score of a piece and the performances chosen from it."""

    name: str
    unrolled: Unrolled
    performances: list[PerformanceData] = field(default_factory=list)

    @property
    def strip(self) -> np.ndarray:
        return self.unrolled.strip


def _systems(mungos) -> list[tuple[int, int, SystemBox]]:
    """(page, objid, box) of the system objects ('system' preferred over 'staff')."""
    out = []
    for cls in SYSTEM_CLASSES:
        for page, objs in enumerate(mungos):
            out += [(page, o.objid, SystemBox(page, o.top, o.left, o.bottom, o.right))
                    for o in objs if o.clsname == cls]
        if out:
            return out
    return out


def prepare_piece(piece: Piece, synths: list[str] | None = None,
                  tempo_range: tuple[float, float] | None = None,
                  n_bins: int = 92, strip_height: int = STRIP_HEIGHT) -> PreparedPiece:
    """Unroll a piece's score and map the onsets of the chosen performances.

    Parameters
    ----------
    piece : Piece
    synths : list of str, optional
        Keep performances of these synths (all when None).
    tempo_range : (float, float), optional
        Keep performances whose tempo ratio lies in ``[lo, hi]``.
    n_bins : int
        Expected spectrogram bins (checked).
    strip_height : int
        Height of the unrolled strip, pixels.

    Raises
    ------
    AsrError
        When the score has no systems or no chosen performance exists.
    """
    score = piece.load_score()
    pages = score.load_images()
    mungos = score.load_mungos()
    systems = _systems(mungos)
    if not systems:
        raise AsrError(f"{score.mung_dir}: no system ('staff') objects in the MuNG files; "
                       "rebuild the piece")
    unrolled = unroll_systems(pages, [box for _, _, box in systems], strip_height)
    index_of = {(page, objid): unrolled.systems.index(box) for page, objid, box in systems}
    perfs = [p for p in piece.available_performances]
    chosen = []
    for name in perfs:
        perf = piece.load_performance(name)
        if synths is not None and perf.synth not in synths:
            continue
        if tempo_range is not None and not (tempo_range[0] - 1e-9 <= perf.tempo <= tempo_range[1] + 1e-9):
            continue
        chosen.append(perf)
    if not chosen:
        raise AsrError(f"{piece.folder / 'performances'}: no performance with synths {synths} "
                       f"and tempo in {tempo_range}; build them or change the config")
    frames_x: dict[str, dict[int, list[float]]] = {p.name: defaultdict(list) for p in chosen}
    keys = {p.name: f"{p.name}_onset_frame" for p in chosen}
    for page, objs in enumerate(mungos):
        for o in objs:
            if o.clsname not in NOTEHEAD_CLASSES:
                continue
            row, col = o.middle
            system = next((index_of[(page, t)] for t in o.outlinks if (page, t) in index_of),
                          None)
            if system is None:
                system = unrolled.system_of(page, row)
            x = unrolled.to_strip(system, row, col)[1]
            for name, key in keys.items():
                if key in o.data:
                    frames_x[name][int(o.data[key])].append(x)
    prepared = PreparedPiece(piece.name, unrolled)
    for perf in chosen:
        fx = frames_x[perf.name]
        if not fx:
            continue  # no aligned noteheads for this performance
        frames = np.array(sorted(fx), dtype=np.int64)
        xs = np.array([np.median(fx[f]) for f in frames], dtype=np.float32)
        prepared.performances.append(PerformanceData(
            perf.name, perf.synth, perf.tempo, perf.load_spectrogram(mmap=True, n_bins=n_bins),
            frames, xs))
    return prepared

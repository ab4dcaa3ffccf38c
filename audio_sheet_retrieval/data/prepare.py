"""A piece ready for sampling: its unrolled strip and, per performance, onset frame -> strip x."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from audio_sheet_retrieval.data.layout import feature_path
from audio_sheet_retrieval.data.msmd import Performance, Piece
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


class PlacedNotehead(NamedTuple):
    """A MuNG notehead placed on the unrolled strip.

    Attributes
    ----------
    page : int
        0-based page index; object ids restart on every page, so ``(page, objid)``
        identifies a notehead.
    objid : int
        MuNG object id on its page.
    system : int
        Index of its system in ``Unrolled.systems`` (its outlink to a system
        object of the same page, else the nearest system on the page).
    row, x : float
        Strip row and column of the head's centre, pixels.
    data : dict
        The MuNG data items (per performance: onset frame, note event index...).
    """

    page: int
    objid: int
    system: int
    row: float
    x: float
    data: dict


def place_noteheads(mungos, unrolled: Unrolled) -> list[PlacedNotehead]:
    """Every notehead of a score on the strip that ``unroll_systems`` made of its systems.

    Parameters
    ----------
    mungos : list of list of CropObject
        MuNG objects per page (``Score.load_mungos()``).
    unrolled : Unrolled
        The strip of the score's system objects (see :func:`prepare_piece`).

    Returns
    -------
    list of PlacedNotehead
        In page order, then MuNG order.
    """
    index_of = {(page, objid): unrolled.systems.index(box) for page, objid, box in _systems(mungos)}
    out = []
    for page, objs in enumerate(mungos):
        for o in objs:
            if o.clsname not in NOTEHEAD_CLASSES:
                continue
            row, col = o.middle
            system = next((index_of[(page, t)] for t in o.outlinks if (page, t) in index_of),
                          None)
            if system is None:
                system = unrolled.system_of(page, row)
            strip_row, x = unrolled.to_strip(system, row, col)
            out.append(PlacedNotehead(page, o.objid, system, strip_row, x, o.data))
    return out


def _whole(value) -> int | None:
    """``value`` as an int if it is a whole number (MuNG data items may be int or float)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def check_alignment(perf: Performance, heads: list[PlacedNotehead], n_frames: int,
                    mung_files: list[Path]) -> None:
    """Check a performance's note events, onset frames and aligned noteheads against each other.

    Parameters
    ----------
    perf : Performance
    heads : list of PlacedNotehead
        The score's noteheads (:func:`place_noteheads`).
    n_frames : int
        Frames of the performance's spectrogram.
    mung_files : list of Path
        MuNG file of each page (named in the errors).

    Raises
    ------
    AsrError
        Naming the file and the fix, when the note events and onset frames differ in
        number, an onset lies beyond the spectrogram's end, or a notehead's note event
        index or onset frame does not match the performance's files.
    """
    notes, onsets = perf.load_note_events(), perf.load_onsets()
    fix = "rebuild the piece with build_dataset.py --pieces <name> --force, or re-download MSMD"
    if len(notes) != len(onsets):
        raise AsrError(f"{feature_path(perf.folder, 'onsets')}: {len(onsets)} onset frames for "
                       f"{len(notes)} note events; {fix}")
    if len(onsets) and onsets.max() >= n_frames:
        raise AsrError(f"{feature_path(perf.folder, 'spec')}: spectrogram of {n_frames} frames is "
                       f"shorter than its onsets (last onset at frame {int(onsets.max())}); {fix}")
    frame_key, event_key = f"{perf.name}_onset_frame", f"{perf.name}_note_event_idx"
    for h in heads:
        if frame_key not in h.data:
            continue
        frame = _whole(h.data[frame_key])
        where = f"{mung_files[h.page]}: notehead {h.objid}"
        if frame is None or not 0 <= frame < n_frames:
            raise AsrError(f"{where} has {frame_key} = {h.data[frame_key]!r}, outside the "
                           f"spectrogram's {n_frames} frames; {fix}")
        if event_key in h.data:
            event = _whole(h.data[event_key])
            if event is None or not 0 <= event < len(onsets):
                raise AsrError(f"{where} has {event_key} = {h.data[event_key]!r}, but the "
                               f"performance has "
                               f"{len(onsets)} note events; {fix}")
            if onsets[event] != frame:
                raise AsrError(f"{where}: onset frame {frame} disagrees with note event {event}'s "
                               f"onset frame {int(onsets[event])}; {fix}")


def prepare_piece(piece: Piece, synths: list[str] | None = None,
                  tempo_range: tuple[float, float] | None = None,
                  n_bins: int = 92, strip_height: int = STRIP_HEIGHT) -> PreparedPiece:
    """Unroll a piece's score and map the onsets of the chosen performances.

    Every chosen performance is checked on the way (:func:`check_alignment`):
    its spectrogram has ``n_bins`` finite bins and covers every onset, and its
    note events, onset frames and aligned noteheads agree.

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
        When the score has no systems, no chosen performance exists, or a
        performance's files are inconsistent (the message names the file).
    """
    score = piece.load_score()
    pages = score.load_images()
    mungos = score.load_mungos()
    systems = _systems(mungos)
    if not systems:
        raise AsrError(f"{score.mung_dir}: no system ('staff') objects in the MuNG files; "
                       "rebuild the piece")
    unrolled = unroll_systems(pages, [box for _, _, box in systems], strip_height)
    heads = place_noteheads(mungos, unrolled)
    mung_files = [score.mung_dir / f"{page.stem}.xml" for page in score.page_files]
    chosen = []
    for name in piece.available_performances:
        perf = piece.load_performance(name)
        if synths is not None and perf.synth not in synths:
            continue
        if tempo_range is not None and not (tempo_range[0] - 1e-9 <= perf.tempo <= tempo_range[1] + 1e-9):
            continue
        chosen.append(perf)
    if not chosen:
        raise AsrError(f"{piece.folder / 'performances'}: no performance with synths {synths} "
                       f"and tempo in {tempo_range}; build them or change the config")
    prepared = PreparedPiece(piece.name, unrolled)
    for perf in chosen:
        key = f"{perf.name}_onset_frame"
        if not any(key in h.data for h in heads):
            continue  # no aligned noteheads for this performance
        spec = perf.load_spectrogram(mmap=True, n_bins=n_bins)
        check_alignment(perf, heads, spec.shape[1], mung_files)
        fx: dict[int, list[float]] = defaultdict(list)
        for h in heads:
            if key in h.data:
                fx[int(h.data[key])].append(h.x)
        frames = np.array(sorted(fx), dtype=np.int64)
        xs = np.array([np.median(fx[f]) for f in frames], dtype=np.float32)
        prepared.performances.append(PerformanceData(perf.name, perf.synth, perf.tempo, spec,
                                                     frames, xs))
    return prepared

"""The user's own scores as a searchable library: identify a recording, locate an excerpt.

Score files are unrolled into one strip each:

* notation files (MusicXML, ``.mxl``, kern, ABC; LilyPond ``.ly``) are engraved
  by the builder's engraver, so systems and note onsets are known and there is
  one sheet snippet per onset position;
* page images (PNG, JPEG) and PDFs go through the staff-system detector
  (:mod:`audio_sheet_retrieval.sheet`) and get a snippet every ``hop_px`` pixels.

The snippets' codes form a :class:`~audio_sheet_retrieval.eval.snippet_db.SnippetDB`
(with each snippet's page, system and column), cached as ``.npz`` beside the
scores and rebuilt when a score file or the model changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from audio_sheet_retrieval.data.pools import sheet_snippet
from audio_sheet_retrieval.data.unroll import SystemBox, Unrolled, unroll_systems
from audio_sheet_retrieval.errors import AsrError
from audio_sheet_retrieval.eval.search import PieceRanking, identify, search
from audio_sheet_retrieval.eval.snippet_db import SnippetDB, file_digest

NOTATION_SUFFIXES = (".musicxml", ".xml", ".mxl", ".krn", ".abc", ".ly")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf")
HOP_PX = 20
"""Distance between snippets of a page image without known onsets, in pixels."""


@dataclass
class UnrolledScore:
    """One score file unrolled, with the strip columns where snippets are taken."""

    name: str
    path: Path
    unrolled: Unrolled
    xs: np.ndarray


def score_files(paths: list[str | Path]) -> list[Path]:
    """Score files among ``paths`` (folders are searched, non-recursively)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in NOTATION_SUFFIXES + IMAGE_SUFFIXES)
        elif p.is_file():
            if p.suffix.lower() not in NOTATION_SUFFIXES + IMAGE_SUFFIXES:
                raise AsrError(f"{p}: not a score file; use MusicXML, .mxl, kern, ABC, LilyPond, "
                               "PNG, JPEG or PDF")
            out.append(p)
        else:
            raise AsrError(f"{p}: no such file or folder")
    if not out:
        raise AsrError(f"no score files in {', '.join(map(str, paths))}; give MusicXML, .mxl, kern, "
                       "ABC, LilyPond, PNG, JPEG or PDF files")
    return out


def _unroll_notation(path: Path) -> tuple[Unrolled, np.ndarray]:
    from audio_sheet_retrieval.build.pipeline import engrave_source
    from audio_sheet_retrieval.build.sources import PieceSource, piece_name

    try:
        engraved = engrave_source(PieceSource(piece_name(path.stem), path.resolve()), "verovio")
    except (ValueError, RuntimeError, OSError) as err:
        raise AsrError(f"{path}: cannot engrave it ({str(err).splitlines()[0]})") from None
    boxes = [SystemBox(s.page, s.top, s.left, s.bottom, s.right) for s in engraved.systems]
    unrolled = unroll_systems(engraved.pages, boxes)
    xs = []
    for head in engraved.noteheads:
        if head.onset_s is not None:
            row, col = head.center
            xs.append(unrolled.to_strip(unrolled.system_of(head.page, row), row, col)[1])
    xs = np.unique(np.round(np.asarray(xs, dtype=np.float64) / 2.0) * 2.0)
    return unrolled, xs


def _unroll_images(path: Path, hop_px: int) -> tuple[Unrolled, np.ndarray]:
    from audio_sheet_retrieval.sheet.pages import load_pages
    from audio_sheet_retrieval.sheet.staff_detection import unroll_page_images

    unrolled, _ = unroll_page_images(load_pages(path))
    if not unrolled.systems:
        raise AsrError(f"{path}: no staff systems found on the page(s); use a cleaner scan")
    width = unrolled.strip.shape[1]
    return unrolled, np.arange(hop_px / 2, width, hop_px, dtype=np.float64)


def unroll_score_file(path: str | Path, hop_px: int = HOP_PX) -> UnrolledScore:
    """Unroll one score file (see the module docstring for how)."""
    path = Path(path)
    if path.suffix.lower() in NOTATION_SUFFIXES:
        unrolled, xs = _unroll_notation(path)
    else:
        unrolled, xs = _unroll_images(path, hop_px)
    return UnrolledScore(path.stem, path, unrolled, xs)


def _fingerprint(files: list[Path], params: str, hop_px: int) -> dict:
    return {"kind": "sheet", "params": params, "hop_px": str(hop_px),
            "scores": ";".join(f"{f.resolve()}:{file_digest(f)}" for f in files)}


def build_library(files: list[Path], model, params_id: str, hop_px: int = HOP_PX,
                  batch_size: int = 256) -> SnippetDB:
    """Embed every snippet of every score file into a database with locations."""
    codes, ids, locations, names = [], [], [], []
    for i, path in enumerate(tqdm(files, desc="unrolling and embedding scores", unit="score")):
        score = unroll_score_file(path, hop_px)
        names.append(score.name)
        strip = score.unrolled.strip
        for lo in range(0, len(score.xs), batch_size):
            xs = score.xs[lo:lo + batch_size]
            sheets = np.stack([sheet_snippet(strip, float(x)) for x in xs])
            codes.append(model.embed_sheet(sheets).cpu().numpy())
            ids.append(np.full(len(xs), i, dtype=np.int64))
            locations += [score.unrolled.from_strip(float(x)) for x in xs]
    loc = np.asarray([(page, system, col) for system, page, col in locations], dtype=np.float32)
    return SnippetDB("sheet", np.concatenate(codes).astype(np.float32), np.concatenate(ids), names,
                     _fingerprint(files, params_id, hop_px), loc.reshape(-1, 3))


def open_library(paths: list[str | Path], model, params_id: str, cache: str | Path | None = None,
                 rebuild: bool = False, hop_px: int = HOP_PX) -> SnippetDB:
    """The library of the score files in ``paths``, from its cache when still valid.

    The cache (default ``<first folder>/.asr_library.npz``) is rebuilt when a
    score file, the model or ``hop_px`` changed.
    """
    files = score_files(paths)
    first = Path(paths[0])
    cache = Path(cache) if cache else (first if first.is_dir() else first.parent) / ".asr_library.npz"
    fingerprint = _fingerprint(files, params_id, hop_px)
    if cache.is_file() and not rebuild:
        db = SnippetDB.load(cache)
        if db.fingerprint == fingerprint:
            return db
    db = build_library(files, model, params_id, hop_px)
    db.save(cache)
    return db


def recording_excerpts(path: str | Path, context: int, hop_frames: int | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Excerpts of a recording every ``hop_frames`` (default ``context // 4``).

    Returns
    -------
    excerpts : np.ndarray, shape (n, 92, context), float32
    centres_s : np.ndarray, shape (n,)
        Time of each excerpt's centre, in seconds.

    Raises
    ------
    AsrError
        Missing, unreadable, silent or too short recordings.
    """
    from audio_sheet_retrieval.audio.io import recording_spectrogram
    from audio_sheet_retrieval.audio.spectrogram import FPS
    from audio_sheet_retrieval.data.pools import spec_excerpt

    spec = recording_spectrogram(path, context)
    hop = hop_frames or max(context // 4, 1)
    centres = np.arange(context // 2, spec.shape[1] - context // 2 + 1, hop)
    return np.stack([spec_excerpt(spec, int(c), context) for c in centres]), centres / FPS


def identify_recording(path: str | Path, db: SnippetDB, model, k: int = 5,
                       vote_norm: str = "size") -> PieceRanking:
    """Rank the library's pieces for a recording by k-NN votes of its excerpts.

    Votes are divided by each piece's number of snippets by default, so that
    long scores do not win by size (see :func:`~audio_sheet_retrieval.eval.search.identify`).
    """
    excerpts, _ = recording_excerpts(path, model.spec_shape[1])
    return identify(model.embed_spec(excerpts).cpu().numpy(), db, k=k, vote_norm=vote_norm)


@dataclass
class Location:
    """Where an excerpt of the recording sounds in the score."""

    time_s: float
    piece: str
    page: int
    system: int
    column_px: float
    similarity: float


def locate_recording(path: str | Path, db: SnippetDB, model, hop_frames: int | None = None
                     ) -> list[Location]:
    """For each excerpt of a recording, the best-matching place in the library's scores.

    Pages and systems are 1-based in the result; the column is in page pixels
    of the 835-px-wide page.
    """
    if db.locations is None:
        raise AsrError("the score library has no snippet locations; rebuild it")
    excerpts, centres = recording_excerpts(path, model.spec_shape[1], hop_frames)
    nn = search(model.embed_spec(excerpts).cpu().numpy(), db, k=1)
    out = []
    for t, row, sim in zip(centres, nn.index[:, 0], nn.similarity[:, 0]):
        page, system, col = db.locations[row]
        out.append(Location(float(t), db.piece_names[db.piece_ids[row]], int(page) + 1,
                            int(system) + 1, float(col), float(sim)))
    return out

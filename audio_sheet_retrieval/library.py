"""The user's own scores as a searchable library: identify a recording, locate an excerpt.

Scores are found in the files and folders given (:func:`find_scores`):

* a notation file (MusicXML, ``.mxl``, kern, ABC; LilyPond ``.ly``) is one
  score, engraved by the builder's engraver, so systems and note onsets are
  known and there is one sheet snippet per onset position;
* page images (PNG, JPEG) and PDFs go through the staff-system detector
  (:mod:`audio_sheet_retrieval.sheet`) and get a snippet every ``hop_px``
  pixels. The pages of one score are one score when they lie in a
  sub-folder of their own (in the natural order of their names) or are named
  ``<score>_p<N>`` (also ``-p<N>``, `` p<N>``, ``_page<N>``, any case).

Every score is unrolled the way the training data were: only systems of two
staves (a piano grand staff) are kept, and its pages are scaled so that its
staff lines lie as far apart as on the training data's pages
(:data:`~audio_sheet_retrieval.sheet.staff_detection.TRAINED_LINE_DISTANCE_PX`).
Snippets have the model's size (``STAFF_HEIGHT`` x ``SHEET_CONTEXT``). A score
that cannot be used (unreadable, no staff systems, not a grand staff) is
reported with a warning naming its file and left out.

The snippets' codes form a :class:`~audio_sheet_retrieval.eval.snippet_db.SnippetDB`
(with each snippet's page, system and column), cached as ``.npz`` in the
user's cache folder (``$XDG_CACHE_HOME/audio_sheet_retrieval``, default
``~/.cache/audio_sheet_retrieval``), one file per set of scores and model,
rebuilt when a score file changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from audio_sheet_retrieval.data.pools import sheet_snippet
from audio_sheet_retrieval.data.unroll import SystemBox, Unrolled, nearest_system, unroll_systems
from audio_sheet_retrieval.digests import file_digest
from audio_sheet_retrieval.errors import AsrError, UsageError, Warn, warn_stderr
from audio_sheet_retrieval.eval.search import PieceRanking, identify, search
from audio_sheet_retrieval.eval.snippet_db import SnippetDB
from audio_sheet_retrieval.sheet.staff_detection import (
    SCALE_TOLERANCE,
    STAVES_PER_SYSTEM,
    TRAINED_LINE_DISTANCE_PX,
    check_system_staves,
    rescale_page,
    scale_box,
)

NOTATION_SUFFIXES = (".musicxml", ".xml", ".mxl", ".krn", ".abc", ".ly")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf")
"""Suffixes of page files: images and PDFs."""
HOP_PX = 20
"""Distance between snippets of a page image without known onsets, in pixels."""
PAGE_NAME = re.compile(r"^(?P<score>.*?[^_\- ])[_\- ]p(?:age)?[_\- ]?(?P<page>\d+)$", re.IGNORECASE)
"""Stem of a page file of a multi-file score: ``<score>_p<N>``, ``<score>-page<N>``, ..."""
LIBRARY_VERSION = 2
"""Version of the library cache's content (2: model-sized snippets, scaled pages)."""


# =================================================================== finding scores


@dataclass(frozen=True)
class ScoreSource:
    """One score of the library: a notation file, or the page files of one score.

    Attributes
    ----------
    name : str
        The name the score is listed under.
    files : tuple of Path
        One notation file, or page images / PDFs in page order.
    """

    name: str
    files: tuple[Path, ...]

    @property
    def is_notation(self) -> bool:
        return self.files[0].suffix.lower() in NOTATION_SUFFIXES

    @property
    def label(self) -> str:
        """The files, for messages: ``a.png`` or ``op1_p1.png (+2 page files)``."""
        extra = f" (+{len(self.files) - 1} page files)" if len(self.files) > 1 else ""
        return f"{self.files[0]}{extra}"


def _natural_key(path: Path) -> list:
    """Sort key putting ``p2`` before ``p10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _is_score_file(path: Path) -> bool:
    return path.suffix.lower() in NOTATION_SUFFIXES + IMAGE_SUFFIXES


def _folder_score(folder: Path, warn: Warn) -> ScoreSource | None:
    """The pages of a sub-folder as one score (None if it holds no page files)."""
    files = [f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")]
    pages = sorted((f for f in files if f.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
    notation = [f for f in files if f.suffix.lower() in NOTATION_SUFFIXES]
    if notation:
        warn(f"{folder}: a sub-folder is read as the pages of one score, so its notation files "
             f"({', '.join(f.name for f in sorted(notation)[:3])}{', ...' if len(notation) > 3 else ''})"
             " are left out; give them with --scores")
    return ScoreSource(folder.name, tuple(pages)) if pages else None


def find_scores(paths: list[str | Path], warn: Warn = warn_stderr) -> list[ScoreSource]:
    """The scores among ``paths``: score files, and folders of them.

    A folder's score files are read, and each of its sub-folders holding page
    images or PDFs is one score of those pages (hidden entries are ignored).
    Page files whose stems are ``<score>_p<N>`` (see :data:`PAGE_NAME`) are
    the pages of one score ``<score>``, in the order of ``N``. Names that
    two scores share get their file's suffix, then its folder.

    Raises
    ------
    UsageError
        A path that does not exist or is not a score file, or no scores at all.
    """
    singles: list[ScoreSource] = []
    groups: dict[tuple[Path, str], list[tuple[int, Path]]] = {}
    seen: set[Path] = set()  # a file given twice (itself and in its folder) is read once

    def add_file(f: Path) -> None:
        if f.resolve() in seen:
            return
        seen.add(f.resolve())
        match = PAGE_NAME.match(f.stem) if f.suffix.lower() in IMAGE_SUFFIXES else None
        if match:
            groups.setdefault((f.parent, match["score"]), []).append((int(match["page"]), f))
        else:
            singles.append(ScoreSource(f.stem, (f,)))

    for p in map(Path, paths):
        if p.is_dir():
            for entry in sorted(p.iterdir(), key=_natural_key):
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    folder = _folder_score(entry, warn)
                    if folder is not None and not seen & {f.resolve() for f in folder.files}:
                        seen.update(f.resolve() for f in folder.files)
                        singles.append(folder)
                elif entry.is_file() and _is_score_file(entry):
                    add_file(entry)
        elif p.is_file():
            if not _is_score_file(p):
                raise UsageError(f"{p}: not a score file; use MusicXML, .mxl, kern, ABC, LilyPond, "
                               "PNG, JPEG or PDF")
            add_file(p)
        else:
            raise UsageError(f"{p}: no such file or folder; check the path")
    scores = singles + [ScoreSource(name, tuple(f for _, f in sorted(pages, key=lambda t: t[0])))
                        for (_, name), pages in groups.items()]
    if not scores:
        raise UsageError(f"no score files in {', '.join(map(str, paths))}; give MusicXML, .mxl, kern, "
                       "ABC, LilyPond, PNG, JPEG or PDF files")
    return _unique_names(scores)


def _unique_names(scores: list[ScoreSource]) -> list[ScoreSource]:
    """Scores whose names are unique: shared names get the suffix, then the folder, then the path."""
    def renamed(candidates: list[ScoreSource], key) -> list[ScoreSource]:
        counts: dict[str, int] = {}
        for s in candidates:
            counts[s.name] = counts.get(s.name, 0) + 1
        return [ScoreSource(key(s), s.files) if counts[s.name] > 1 else s for s in candidates]

    scores = renamed(scores, lambda s: s.name + (s.files[0].suffix.lower() if len(s.files) == 1 else ""))
    scores = renamed(scores, lambda s: f"{s.files[0].parent.name}/{s.name}")
    return renamed(scores, lambda s: str(s.files[0].resolve()))


def score_files(paths: list[str | Path]) -> list[Path]:
    """Every file of the scores among ``paths`` (see :func:`find_scores`)."""
    return [f for score in find_scores(paths) for f in score.files]


# =================================================================== unrolling


@dataclass
class UnrolledScore:
    """One score unrolled, with the strip columns where snippets are taken.

    Attributes
    ----------
    name : str
    path : Path
        Its (first) file.
    unrolled : Unrolled
        Strip of its grand-staff systems at the training data's staff size;
        ``unrolled.systems`` are in pixels of the scaled pages.
    xs : np.ndarray, shape (n,)
        Strip columns of the snippets' centres, in pixels.
    page_scales : list of float
        Factor each page was scaled by (a column ``c`` of the scaled page is
        column ``c / factor`` of the page as read).
    """

    name: str
    path: Path
    unrolled: Unrolled
    xs: np.ndarray
    page_scales: list[float]


def _unroll_notation(score: ScoreSource, line_distance_px: float | None,
                     warn: Warn) -> tuple[Unrolled, np.ndarray, list[float]]:
    from audio_sheet_retrieval.build.pipeline import engrave_source
    from audio_sheet_retrieval.build.sources import PieceSource, piece_name

    path = score.files[0]
    try:
        engraved = engrave_source(PieceSource(piece_name(path.stem) or "score", path.resolve()),
                                  "verovio")
    except (ValueError, RuntimeError, OSError) as err:
        raise AsrError(f"{path}: cannot engrave it ({str(err).splitlines()[0]})") from None
    counts = [len(s.staff_lines) // 5 for s in engraved.systems]
    if not counts:
        raise AsrError(f"{path}: the engraving has no staff systems; check the score")
    check_system_staves(str(path), counts, warn)
    kept = [k for k, c in enumerate(counts) if c == STAVES_PER_SYSTEM]
    distance = float(np.median([np.mean(np.diff(engraved.systems[k].staff_lines[i:i + 5]))
                                for k in kept for i in range(0, len(engraved.systems[k].staff_lines), 5)]))
    scale = 1.0
    if line_distance_px is not None and abs(line_distance_px / distance - 1.0) > SCALE_TOLERANCE:
        scale = line_distance_px / distance
    pages = [rescale_page(p, scale) for p in engraved.pages] if scale != 1.0 else engraved.pages
    boxes = [scale_box(SystemBox(s.page, s.top, s.left, s.bottom, s.right), scale)
             for s in (engraved.systems[k] for k in kept)]
    unrolled = unroll_systems(pages, boxes)
    # one snippet per onset position of a notehead of a kept system
    xs = []
    for head in engraved.noteheads:
        if head.onset_s is None:
            continue
        row, col = head.center
        if counts[nearest_system(engraved.systems, head.page, row)] != STAVES_PER_SYSTEM:
            continue
        row, col = (row + 0.5) * scale - 0.5, (col + 0.5) * scale - 0.5
        xs.append(unrolled.to_strip(unrolled.system_of(head.page, row), row, col)[1])
    if not xs:
        raise AsrError(f"{path}: no notes in the grand-staff systems of the engraving; check the score")
    xs = np.unique(np.round(np.asarray(xs, dtype=np.float64) / 2.0) * 2.0)
    return unrolled, xs, [scale] * len(pages)


def _unroll_pages(score: ScoreSource, hop_px: int, line_distance_px: float | None,
                  warn: Warn) -> tuple[Unrolled, np.ndarray, list[float]]:
    from audio_sheet_retrieval.sheet.score_pages import unroll_page_files

    out = unroll_page_files(score.files, score.label, line_distance_px, warn)
    width = out.unrolled.strip.shape[1]
    return out.unrolled, np.arange(hop_px / 2, width, hop_px, dtype=np.float64), out.scales


def unroll_score(score: ScoreSource, hop_px: int = HOP_PX,
                 line_distance_px: float | None = TRAINED_LINE_DISTANCE_PX,
                 warn: Warn = warn_stderr) -> UnrolledScore:
    """Unroll one score (see the module docstring for how).

    Parameters
    ----------
    score : ScoreSource
    hop_px : int
        Distance between the snippets of page images, in pixels.
    line_distance_px : float, optional
        Distance between staff-line centres to scale the pages to, in pixels
        (None: keep their size).
    warn : callable
        Receives a warning (one line naming the file) when some systems are
        left out.

    Raises
    ------
    AsrError
        A file that cannot be read or engraved, no staff systems, or mostly
        systems that are not piano grand staves.
    """
    if score.is_notation:
        unrolled, xs, scales = _unroll_notation(score, line_distance_px, warn)
    else:
        unrolled, xs, scales = _unroll_pages(score, hop_px, line_distance_px, warn)
    return UnrolledScore(score.name, score.files[0], unrolled, xs, scales)


def unroll_score_file(path: str | Path, hop_px: int = HOP_PX,
                      line_distance_px: float | None = TRAINED_LINE_DISTANCE_PX,
                      warn: Warn = warn_stderr) -> UnrolledScore:
    """Unroll one score file (a notation file, or an image or PDF of all its pages)."""
    path = Path(path)
    return unroll_score(ScoreSource(path.stem, (path,)), hop_px, line_distance_px, warn)


# =================================================================== the library


def _digest(path: Path) -> str:
    """SHA-256 of a file, or ``"unreadable"`` (the score is then reported when it is unrolled)."""
    try:
        return file_digest(path)
    except OSError:
        return "unreadable"


def _fingerprint(scores: list[ScoreSource], params: str, hop_px: int,
                 sheet_shape: tuple[int, int], line_distance_px: float | None) -> dict[str, str]:
    """What a library depends on: the model, the snippets' making and every file's content."""
    return {"kind": "sheet", "library_version": str(LIBRARY_VERSION), "params": params,
            "hop_px": str(hop_px), "sheet_shape": f"{sheet_shape[0]}x{sheet_shape[1]}",
            "line_distance_px": "none" if line_distance_px is None else f"{line_distance_px:g}",
            "scores": json.dumps([[s.name, [[str(f.resolve()), _digest(f)] for f in s.files]]
                                  for s in scores])}


def cache_folder() -> Path:
    """``$XDG_CACHE_HOME/audio_sheet_retrieval`` (if absolute), else ``~/.cache/audio_sheet_retrieval``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "audio_sheet_retrieval"


def default_cache_path(scores: list[ScoreSource], params: str) -> Path:
    """The cache file of a set of scores and a model: one per set, in :func:`cache_folder`."""
    key = json.dumps([params, sorted(str(f.resolve()) for s in scores for f in s.files)])
    return cache_folder() / f"library-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def build_library(scores: list[ScoreSource], model, params_id: str, hop_px: int = HOP_PX,
                  line_distance_px: float | None = TRAINED_LINE_DISTANCE_PX,
                  batch_size: int = 256, warn: Warn = warn_stderr) -> SnippetDB:
    """Embed every snippet of every usable score into a database with locations.

    Sheet snippets have the model's size (``model.raw_sheet_shape``: the
    config's STAFF_HEIGHT x SHEET_CONTEXT). A score that cannot be used is
    reported through ``warn`` and left out; its message is kept in the
    database's fingerprint (``"left_out"``) to be repeated when the cache is
    read.

    Raises
    ------
    AsrError
        When no score can be used (the score's own error when there is one).
    """
    height, width = model.raw_sheet_shape
    codes, ids, locations, names, left_out = [], [], [], [], []
    for score in tqdm(scores, desc="unrolling and embedding scores", unit="score",
                      disable=len(scores) < 2):
        try:
            unrolled = unroll_score(score, hop_px, line_distance_px, warn)
        except AsrError as err:
            if len(scores) == 1:
                raise
            left_out.append(f"{err}; the score is left out")
            warn(left_out[-1])
            continue
        i = len(names)
        names.append(score.name)
        strip = unrolled.unrolled.strip
        for lo in range(0, len(unrolled.xs), batch_size):
            xs = unrolled.xs[lo:lo + batch_size]
            sheets = np.stack([sheet_snippet(strip, float(x), height, width) for x in xs])
            codes.append(model.embed_sheet(sheets).cpu().numpy())
            ids.append(np.full(len(xs), i, dtype=np.int64))
            for x in xs:
                system, page, col = unrolled.unrolled.from_strip(float(x))
                locations.append((page, system, (col + 0.5) / unrolled.page_scales[page] - 0.5))
    if not names:
        raise AsrError(f"none of the {len(scores)} scores can be used (each is named above); give "
                       "piano scores as notation files, page images or PDFs")
    fingerprint = _fingerprint(scores, params_id, hop_px, (height, width), line_distance_px)
    fingerprint["left_out"] = json.dumps(left_out)
    return SnippetDB("sheet", np.concatenate(codes).astype(np.float32), np.concatenate(ids), names,
                     fingerprint, np.asarray(locations, dtype=np.float32).reshape(-1, 3))


def open_library(paths: list[str | Path], model, params_id: str, cache: str | Path | None = None,
                 rebuild: bool = False, hop_px: int = HOP_PX,
                 line_distance_px: float | None = TRAINED_LINE_DISTANCE_PX,
                 warn: Warn = warn_stderr) -> SnippetDB:
    """The library of the scores in ``paths``, from its cache when still valid.

    Parameters
    ----------
    paths : list of path
        Score files and folders (see :func:`find_scores`).
    model : TwoBranchModel
    params_id : str
        Identifies the model's parameters (e.g. their SHA-256).
    cache : path, optional
        Cache file (or a folder to put it in); default
        :func:`default_cache_path` in the user's cache folder, one per set
        of scores and model. The scores' folders are never written to.
    rebuild : bool
        Rebuild even if the cache is valid.
    hop_px : int
    line_distance_px : float, optional
        See :func:`unroll_score`.
    warn : callable
        Receives one-line warnings: scores left out, an unreadable cache
        (rebuilt), a cache that cannot be written (the library is then used
        without it).

    Returns
    -------
    SnippetDB
    """
    scores = find_scores(paths, warn)
    height_width = tuple(model.raw_sheet_shape)
    if cache is None:
        cache = default_cache_path(scores, params_id)
    cache = Path(cache)
    if cache.is_dir():
        cache = cache / default_cache_path(scores, params_id).name
    fingerprint = _fingerprint(scores, params_id, hop_px, height_width, line_distance_px)
    if cache.is_file() and not rebuild:
        try:
            db = SnippetDB.load(cache)
        except AsrError:
            warn(f"{cache}: the library cache is unreadable (truncated or corrupt); rebuilding it")
        else:
            if {k: db.fingerprint.get(k) for k in fingerprint} == fingerprint and db.locations is not None:
                for message in json.loads(db.fingerprint.get("left_out", "[]")):
                    warn(message)
                return db
    db = build_library(scores, model, params_id, hop_px, line_distance_px, warn=warn)
    try:
        db.save(cache)
    except (OSError, AsrError) as err:  # the atomic writer may turn OSError into AsrError
        reason = (err.strerror or type(err).__name__) if isinstance(err, OSError) else str(err)
        warn(f"{cache}: cannot write the library cache ({reason}); going on without it; pass "
             "--cache with a writable file to keep it")
    return db


# =================================================================== queries


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
        Missing, unreadable, non-finite, silent or too short recordings.
    """
    from audio_sheet_retrieval.audio.io import recording_spectrogram
    from audio_sheet_retrieval.audio.spectrogram import FPS
    from audio_sheet_retrieval.data.pools import spec_excerpt

    spec = recording_spectrogram(path, context)
    hop = hop_frames or max(context // 4, 1)
    centres = np.arange(context // 2, spec.shape[1] - context // 2 + 1, hop)
    return np.stack([spec_excerpt(spec, int(c), context) for c in centres]), centres / FPS


def identify_excerpts(excerpts: np.ndarray, db: SnippetDB, model, k: int = 5,
                      vote_norm: str = "size") -> PieceRanking:
    """Rank the library's pieces for a recording's excerpts by their k-NN votes.

    Votes are divided by each piece's number of snippets by default, so that
    long scores do not win by size (see :func:`~audio_sheet_retrieval.eval.search.identify`);
    ``PieceRanking.scores`` holds the figure the pieces are ranked by.

    Parameters
    ----------
    excerpts : np.ndarray, shape (n, 92, context), float32
        From :func:`recording_excerpts`.
    db : SnippetDB
    model : TwoBranchModel
    k : int
        Votes per excerpt.
    vote_norm : {'none', 'sqrt', 'size'}
    """
    return identify(model.embed_spec(excerpts).cpu().numpy(), db, k=k, vote_norm=vote_norm)


def identify_recording(path: str | Path, db: SnippetDB, model, k: int = 5,
                       vote_norm: str = "size") -> PieceRanking:
    """Rank the library's pieces for a recording (see :func:`identify_excerpts`)."""
    excerpts, _ = recording_excerpts(path, model.spec_shape[1])
    return identify_excerpts(excerpts, db, model, k, vote_norm)


def format_ranking(ranking: PieceRanking, top: int = 10) -> str:
    """The ``top`` pieces as a table whose first figure is the one they are ranked by.

    Columns: rank, the ranking figure (``votes/snippet`` for ``vote_norm='size'``,
    ``votes/sqrt(snippets)``, or ``votes``), the votes, the piece's snippets
    and its name.
    """
    width = max(len(ranking.score_name), 8)
    lines = [f"{'rank':>4}  {ranking.score_name:>{width}}  {'votes':>5}  {'snippets':>8}  piece"]
    for rank, i in enumerate(ranking.order[:top], start=1):
        figure = (f"{ranking.votes[i]}" if ranking.vote_norm == "none"
                  else f"{ranking.scores[i]:.4g}")
        snippets = "" if ranking.snippets is None else ranking.snippets[i]
        lines.append(f"{rank:>4}  {figure:>{width}}  {ranking.votes[i]:>5}  {snippets:>8}  "
                     f"{ranking.piece_names[i]}")
    return "\n".join(lines)


@dataclass
class Location:
    """Where an excerpt of the recording sounds in the score."""

    time_s: float
    piece: str
    page: int
    system: int
    column_px: float
    similarity: float


def locate_excerpts(excerpts: np.ndarray, centres_s: np.ndarray, db: SnippetDB, model
                    ) -> list[Location]:
    """For each excerpt of a recording, the best-matching place in the library's scores.

    Parameters
    ----------
    excerpts : np.ndarray, shape (n, 92, context), float32
    centres_s : np.ndarray, shape (n,)
        Both from :func:`recording_excerpts`.
    db : SnippetDB
    model : TwoBranchModel

    Returns
    -------
    list of Location
        Pages and systems are 1-based (pages counted over all the files of a
        score; systems over its grand-staff systems); the column is in pixels
        of the page as read (835 px wide).
    """
    if db.locations is None:
        raise AsrError("the score library has no snippet locations; rebuild it with --rebuild")
    nn = search(model.embed_spec(excerpts).cpu().numpy(), db, k=1)
    out = []
    for t, row, sim in zip(centres_s, nn.index[:, 0], nn.similarity[:, 0]):
        page, system, col = db.locations[row]
        out.append(Location(float(t), db.piece_names[db.piece_ids[row]], int(page) + 1,
                            int(system) + 1, float(col), float(sim)))
    return out


def locate_recording(path: str | Path, db: SnippetDB, model, hop_frames: int | None = None
                     ) -> list[Location]:
    """For each excerpt of a recording, the best-matching place (see :func:`locate_excerpts`)."""
    excerpts, centres = recording_excerpts(path, model.spec_shape[1], hop_frames)
    return locate_excerpts(excerpts, centres, db, model)

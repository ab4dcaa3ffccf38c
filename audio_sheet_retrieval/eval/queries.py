"""Query snippets: evenly spaced excerpts of a recording, windows of an unrolled score.

A query is one piece's recording cut into ``n_queries`` evenly spaced
spectrogram excerpts (A2S) or its unrolled score cut into ``n_queries``
evenly spaced 160 x 200 windows (S2A): from a pool's pieces, or from a user's
recording or page images and PDFs (pages of our data layout use their MuNG
system boxes, other pages go through staff detection and are scaled to the
training data's staff size).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from audio_sheet_retrieval.data.pools import SnippetPool, sheet_snippet, spec_excerpt
from audio_sheet_retrieval.errors import AsrError, Warn, warn_stderr


def audio_queries(spec: np.ndarray, n_queries: int, context: int) -> np.ndarray:
    """``n_queries`` evenly spaced excerpts of a whole spectrogram (fewer if it is short).

    Excerpt starts are ``linspace(0, frames - context, n_queries)`` rounded
    and made unique; a spectrogram shorter than ``context`` gives one
    zero-padded excerpt.

    Parameters
    ----------
    spec : np.ndarray, shape (bins, frames)
    n_queries : int
    context : int
        Excerpt length, frames.

    Returns
    -------
    np.ndarray, shape (n, bins, context), float32
    """
    last = max(spec.shape[1] - context, 0)
    starts = np.unique(np.round(np.linspace(0, last, n_queries)).astype(np.int64))
    return np.stack([spec_excerpt(spec, int(s) + context // 2, context) for s in starts])


def sheet_queries(strip: np.ndarray, n_queries: int, height: int = 160, width: int = 200
                  ) -> np.ndarray:
    """``n_queries`` evenly spaced windows of an unrolled score strip.

    Window centres are ``linspace(width / 2, strip_width - width / 2,
    n_queries)`` (pixels) rounded and made unique; vertically each window is
    centred on the strip (white beyond its ends).

    Parameters
    ----------
    strip : np.ndarray, shape (H, W), uint8
    n_queries : int
    height, width : int
        Window size, pixels.

    Returns
    -------
    np.ndarray, shape (n, height, width), uint8
    """
    lo, hi = width / 2, max(strip.shape[1] - width / 2, width / 2)
    centres = np.unique(np.round(np.linspace(lo, hi, n_queries)).astype(np.int64))
    return np.stack([sheet_snippet(strip, float(x), height, width) for x in centres])


def pool_queries(pool: SnippetPool, query_kind: str, n_queries: int = 100
                 ) -> Iterator[tuple[str, np.ndarray]]:
    """(piece name, query snippets) of every piece in the pool.

    ``query_kind='audio'``: the piece's (first) performance in the pool,
    i.e. TEST_SYNTH at TEST_TEMPO for a test pool; ``'sheet'``: its unrolled
    score.
    """
    for piece in pool.pieces:
        if query_kind == "audio":
            yield piece.name, audio_queries(piece.performances[0].spec, n_queries, pool.spec_context)
        else:
            yield piece.name, sheet_queries(piece.strip, n_queries, pool.staff_height,
                                            pool.sheet_context)


def audio_file_queries(path: str | Path, n_queries: int, context: int) -> np.ndarray:
    """Query excerpts of a recording (WAV, FLAC, OGG, MP3).

    Raises
    ------
    AsrError
        Missing or unreadable file, a silent recording, or one shorter than one excerpt.
    """
    from audio_sheet_retrieval.audio.io import recording_spectrogram

    spec = recording_spectrogram(path, context)
    return audio_queries(spec, n_queries, context)


def _read_page(path: Path) -> np.ndarray:
    """A page image of our own data layout (835 px wide, grayscale)."""
    from audio_sheet_retrieval.sheet.pages import load_pages

    pages = load_pages(path)
    if len(pages) != 1:
        raise AsrError(f"{path}: {len(pages)} pages in a page image of the data layout; rebuild "
                       "the piece")
    return pages[0]


def _layout_mung(page: Path) -> Path:
    """``<img dir>/../mung/<stem>.xml``: the MuNG file of a page of our data layout."""
    return page.parent.parent / "mung" / f"{page.stem}.xml"


def page_strip(paths: list[str | Path], warn: Warn = warn_stderr) -> np.ndarray:
    """Unroll score pages (in the given order) into one strip.

    Pages of our data layout (with ``<img dir>/../mung/<stem>.xml``) use their
    annotated system boxes. Other pages (images or PDFs, any number of pages
    each) go through staff detection, keep their systems of two staves (a
    piano grand staff, what the models are trained on) and are scaled to the
    training data's staff size
    (:func:`audio_sheet_retrieval.sheet.staff_detection.unroll_pages`).

    Parameters
    ----------
    paths : list of path
    warn : callable
        Receives a warning naming the files when some systems are left out.

    Returns
    -------
    np.ndarray, shape (200, W), uint8

    Raises
    ------
    AsrError
        A missing or unreadable page, no staff system found, or mostly
        systems that are not grand staves.
    """
    from audio_sheet_retrieval.data.mung import read_mung
    from audio_sheet_retrieval.data.prepare import _systems
    from audio_sheet_retrieval.data.unroll import unroll_systems

    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.is_file():
            raise AsrError(f"{p}: page image not found; check the path")
    if all(_layout_mung(p).is_file() for p in paths):
        images = [_read_page(p) for p in paths]
        mungos = []
        for p in paths:
            try:
                mungos.append(read_mung(_layout_mung(p)))
            except Exception as err:  # ElementTree.ParseError, ValueError
                raise AsrError(f"{_layout_mung(p)}: corrupt MuNG XML ({type(err).__name__}); "
                               "rebuild the piece or remove the file") from None
        systems = [box for _, _, box in _systems(mungos)]
        if not systems:
            raise AsrError(f"{_layout_mung(paths[0])}: no system ('staff') objects in the MuNG file")
        return unroll_systems(images, systems).strip
    return _detected_strip(paths, warn)


def _detected_strip(paths: list[Path], warn: Warn) -> np.ndarray:
    """Unroll arbitrary page images and PDFs with the staff detector."""
    from audio_sheet_retrieval.sheet.score_pages import unroll_page_files

    label = str(paths[0]) + (f" (+{len(paths) - 1} page files)" if len(paths) > 1 else "")
    return unroll_page_files(paths, label, warn=warn).unrolled.strip


def page_file_queries(paths: list[str | Path], n_queries: int, height: int = 160,
                      width: int = 200, warn: Warn = warn_stderr) -> np.ndarray:
    """Query windows of score page image(s): unroll (:func:`page_strip`), then cut windows."""
    return sheet_queries(page_strip(paths, warn), n_queries, height, width)

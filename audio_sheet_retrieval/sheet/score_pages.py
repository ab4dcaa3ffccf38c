"""The page files of one score (images, PDFs) as one unrolled strip of grand-staff systems."""

from __future__ import annotations

from pathlib import Path

from audio_sheet_retrieval.errors import AsrError, Warn, warn_stderr
from audio_sheet_retrieval.sheet.pages import load_pages
from audio_sheet_retrieval.sheet.staff_detection import (
    STAVES_PER_SYSTEM,
    TRAINED_LINE_DISTANCE_PX,
    UnrolledPages,
    check_system_staves,
    unroll_pages,
)


def unroll_page_files(files: list[Path], label: str,
                      line_distance_px: float | None = TRAINED_LINE_DISTANCE_PX,
                      warn: Warn = warn_stderr) -> UnrolledPages:
    """Load a score's page files, find its systems and unroll them at the trained staff size.

    Parameters
    ----------
    files : list of Path
        The score's page images and PDFs, in reading order.
    label : str
        How messages name the score (its file, or its first file and a count).
    line_distance_px : float or None
        Staff-line distance the pages are scaled to (pixels); None keeps their size.
    warn : callable
        Receives one line for each system left out (not a grand staff).

    Raises
    ------
    AsrError
        When no staff system is found (a text page, a blank scan) or most
        systems are not grand staves (a quartet score).
    """
    pages = [page for f in files for page in load_pages(f)]
    out = unroll_pages(pages, line_distance_px=line_distance_px,
                       staves_per_system=STAVES_PER_SYSTEM)
    counts = out.staff_counts + out.left_out
    if not counts:
        raise AsrError(f"{label}: no staff systems found on its {len(pages)} page"
                       f"{'s' if len(pages) > 1 else ''}; give score pages (a clean scan at 300 dpi)")
    check_system_staves(label, counts, warn)
    return out

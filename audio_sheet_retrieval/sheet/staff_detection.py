"""Classical staff-line and system detection on score page images, and unrolling.

Pages we did not engrave ourselves (a user's scans, PDF pages) have no
system boxes. This module finds them with no learning, the way optical music
recognition has done for decades:

1. **Darkness.** Grayscale is turned into darkness in [0, 1] against a local
   white level (so uneven scans work) and cleaned with a *directional* median
   filter (the larger of a 1x3 and a 3x1 median), which removes salt and
   pepper but keeps one-pixel staff lines and barlines. A plain 3x3 median or
   a global Otsu threshold is not used: a thin anti-aliased staff line that
   is blurred keeps only about a fifth of the ink's contrast and would vanish.
2. **Skew.** Ink is projected onto rows along slightly slanted directions;
   the slant whose profile has the largest variance (sharpest staff-line
   peaks) is the skew, found coarse to fine over +-3 degrees.
3. **Staff space and line height** are the most frequent vertical white and
   black run lengths of the binarised page; their sum, the distance between
   line centres, is the most frequent black-plus-white pair (checked against
   a comb search of the row profile, which heavy noise cannot fool).
4. **Staves.** The horizontal projection profile, over the page's ink
   columns, of the thin horizontal strokes (a vertical top-hat removes
   beams and noteheads) has one sharp peak per staff line. Five-line combs,
   lines about one line distance apart, are matched against it and their
   best, non-overlapping responses are the staves: in effect, peaks grouped
   by fives with equal spacing, without trusting any single peak. Each
   staff's left and right ends are where at least four of its five lines
   are darker than the spaces next to them, and its lines must be
   continuous ink (the rows of a text page match a comb too, but break into
   letters and words).
5. **Systems.** Consecutive staves joined by vertical ink near their left
   ends (the system's start barline or brace) form one system; a piano
   grand staff is two staves.
6. **Scale.** :func:`unroll_pages` resizes each page so that its staff
   lines lie ``TRAINED_LINE_DISTANCE_PX`` apart, as on the training data's
   pages, and can keep only the systems of a given number of staves.

Limits: staves of one page share their size (spacings within 10% of the
most frequent); a staff narrower than half the widest one that lines up with
no other staff (an ossia, a stack of ledger lines) is dropped; skews beyond
3 degrees are not searched; staves closer than 2.5 spacings are not told
apart; one-pixel grey staff lines that a scan blurs by 1.5 pixels and buries
in noise of 30 grey levels are lost.

Conventions: rows and columns are page pixels of the image given, angles are
in degrees, positive counterclockwise as in :func:`scipy.ndimage.rotate`
(a page rotated with ``ndimage.rotate(page, a)`` has a skew of ``a``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from audio_sheet_retrieval.data.unroll import STRIP_HEIGHT, SystemBox, Unrolled, unroll_systems
from audio_sheet_retrieval.errors import AsrError, Warn

MAX_SKEW_DEG = 3.0
"""Largest skew :func:`estimate_skew` searches for, in degrees."""

MIN_DESKEW_DEG = 0.1
"""Pages whose estimated skew is smaller than this (in degrees) are not rotated."""

TRAINED_LINE_DISTANCE_PX = 7.12
"""Distance between staff-line centres on the training data's pages, in pixels.

The data are engraved by verovio on pages 835 px wide, whose staff lines lie
7.157 px apart by the engraver's own coordinates. :func:`measure_line_distance`
measures 7.12 px: the median over the first pages of 24 pieces of the default
collection (``default_specs()`` shuffled with ``random.Random(0)``), range
7.07 to 7.21 px. :func:`unroll_pages` scales a user's pages to this size;
LilyPond's pages measure 6.2 px.
"""

STAVES_PER_SYSTEM = 2
"""Staves of the systems the models are trained on: a piano grand staff."""

SCALE_TOLERANCE = 0.02
"""Relative difference of staff size below which :func:`unroll_pages` leaves a page as it is
(the training data's sheet augmentation scales by 0.95 to 1.05)."""

_BACKGROUND_BLOCK = 48
"""Side of the blocks over which the white level of the page is estimated, in pixels."""

_INK = 0.1
"""Darkness (fraction of the page's dynamic range) above which a pixel is ink."""

_CONTINUOUS = 0.5
"""Continuity (see :func:`_continuity`) a five-line comb needs to count as a staff."""

_JOIN_INK = 0.25
"""Ink, in pixel widths of full black, that a row must hold for a line to join staves."""


@dataclass(frozen=True)
class Staff:
    """One five-line staff, in page pixels.

    Attributes
    ----------
    lines : tuple of float
        Rows of the five staff lines, top to bottom (sub-pixel centres).
    left, right : int
        First and one-past-last column covered by the staff lines.
    """

    lines: tuple[float, float, float, float, float]
    left: int
    right: int

    @property
    def top(self) -> float:
        """Row of the top staff line, in pixels."""
        return self.lines[0]

    @property
    def bottom(self) -> float:
        """Row of the bottom staff line, in pixels."""
        return self.lines[-1]

    @property
    def spacing(self) -> float:
        """Mean distance between consecutive staff lines, in pixels."""
        return (self.lines[-1] - self.lines[0]) / 4.0


# --------------------------------------------------------------------------
# Darkness, binarisation and run lengths
# --------------------------------------------------------------------------


def _as_gray(page: np.ndarray) -> np.ndarray:
    """Float32 grayscale copy of a page; RGB(A) arrays become the mean of their colours."""
    page = np.asarray(page)
    if page.ndim == 3:
        page = page[..., :3].mean(axis=2)
    if page.ndim != 2 or page.shape[0] < 8 or page.shape[1] < 8:
        raise ValueError(f"expected a 2-D grayscale page image, got shape {page.shape}")
    return page.astype(np.float32)


def _as_uint8(page: np.ndarray) -> np.ndarray:
    """A page as a 2-D uint8 array (white = 255)."""
    page = np.asarray(page)
    if page.ndim == 2 and page.dtype == np.uint8:
        return page
    return np.clip(np.round(_as_gray(page)), 0, 255).astype(np.uint8)


def _darkness(page: np.ndarray) -> np.ndarray:
    """Darkness in [0, 1] of every pixel: 0 is the paper's local white, 1 the ink's black.

    The white level is the 95th percentile of blocks of ``_BACKGROUND_BLOCK``
    pixels (bilinearly interpolated), so uneven illumination of a scan is
    removed; black is the page's 0.5th percentile. Salt and pepper is removed
    by the larger of a horizontal and a vertical 3-pixel median, which keeps
    lines one pixel thin in either direction.
    """
    gray = _as_gray(page)
    h, w = gray.shape
    b = _BACKGROUND_BLOCK
    nh, nw = -(-h // b), -(-w // b)
    padded = np.pad(gray, ((0, nh * b - h), (0, nw * b - w)), mode="edge")
    blocks = padded.reshape(nh, b, nw, b).transpose(0, 2, 1, 3).reshape(nh, nw, b * b)
    white = np.percentile(blocks, 95, axis=2)
    white = ndimage.maximum_filter(white, size=3, mode="nearest")  # blocks full of ink
    rows = (np.arange(h) + 0.5) / b - 0.5  # pixel centres in block units
    cols = (np.arange(w) + 0.5) / b - 0.5
    white = ndimage.map_coordinates(white, np.meshgrid(rows, cols, indexing="ij"), order=1,
                                    mode="nearest")
    black = float(np.percentile(gray, 0.5))
    dark = (white - gray) / np.maximum(white - black, 32.0)
    dark = np.clip(dark, 0.0, 1.0)
    return np.maximum(ndimage.median_filter(dark, size=(1, 3), mode="nearest"),
                      ndimage.median_filter(dark, size=(3, 1), mode="nearest"))


def _binarize(dark: np.ndarray) -> np.ndarray:
    """Ink mask: darkness above ``_INK`` after a 5-pixel horizontal mean.

    The horizontal mean keeps horizontal lines (staff lines, beams) at full
    strength while averaging away pixel noise, so faint blurred staff lines
    survive the fixed threshold of a tenth of the dynamic range.
    """
    return ndimage.uniform_filter1d(dark, size=5, axis=1, mode="nearest") > _INK


def _vertical_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertical run lengths of a binary image, in pixels.

    Returns
    -------
    black : np.ndarray
        Lengths of all runs of True (ink) pixels.
    white : np.ndarray
        Lengths of the runs of False pixels between two black runs of a
        column (runs touching the top or bottom border are left out).
    pairs : np.ndarray
        For every such white run, its length plus that of the black run
        above it: the distance from one line's top to the next one's.
    """
    h, w = mask.shape
    cols = np.zeros((w, h + 2), dtype=np.int8)
    cols[:, 1:-1] = mask.T
    edges = np.diff(cols.ravel())
    starts = np.flatnonzero(edges == 1)  # black runs never cross a column: each is padded
    ends = np.flatnonzero(edges == -1)
    black = ends - starts
    same_col = (starts[1:] // (h + 2)) == (ends[:-1] // (h + 2))
    white = (starts[1:] - ends[:-1])[same_col]
    pairs = (starts[1:] - starts[:-1])[same_col]
    return black, white, pairs


def _mode(lengths: np.ndarray, lo: int, hi: int) -> float:
    """Most frequent value of ``lengths`` in ``[lo, hi]``, refined to sub-pixel.

    The refinement is the count-weighted mean of the mode and its two
    neighbours, which splits the difference when blur or scaling makes two
    adjacent lengths nearly equally frequent.
    """
    counts = np.bincount(lengths[(lengths >= lo) & (lengths <= hi)], minlength=hi + 2)
    if counts.sum() == 0:
        return float("nan")
    k = int(np.argmax(counts))
    near = np.arange(max(k - 1, 0), k + 2)
    return float((near * counts[near]).sum() / counts[near].sum())


def staff_space_and_line_height(page: np.ndarray) -> tuple[float, float]:
    """Staff space and staff-line height from vertical run lengths.

    The classic estimate: in a score, the most frequent vertical run of
    white pixels is the gap between two staff lines and the most frequent
    run of black pixels is a staff line's thickness.

    Parameters
    ----------
    page : np.ndarray, shape (height, width), uint8
        Grayscale page, white = 255.

    Returns
    -------
    staff_space : float
        White gap between two neighbouring staff lines, in pixels.
    line_height : float
        Thickness of a staff line, in pixels. ``staff_space + line_height``
        is the distance between line centres. Both are NaN on a page
        without ink.

    Notes
    -----
    Blur moves ink from spaces to lines, so on a blurred scan the two
    trade off against each other (a 1-pixel line blurred by 1 pixel reads
    about 3 pixels thick); their sum stays put, and the detector itself
    uses the most frequent sum of a black run and the white run below it.
    """
    return _space_and_height(_binarize(_darkness(page)))


def _space_and_height(mask: np.ndarray) -> tuple[float, float]:
    black, white, _ = _vertical_runs(mask)
    line_height = _mode(black, 1, max(mask.shape[0] // 50, 4))
    staff_space = _mode(white, 2, max(mask.shape[0] // 20, 8))
    return staff_space, line_height


def _line_distance(mask: np.ndarray) -> float:
    """Distance between staff-line centres, in pixels: the most frequent black+white pair.

    Blur thickens lines and narrows spaces by the same amount, so the sum
    of a black run and the white run below it is steadier than either.
    """
    _, _, pairs = _vertical_runs(mask)
    return _mode(pairs, 3, max(mask.shape[0] // 15, 10))


# --------------------------------------------------------------------------
# Skew
# --------------------------------------------------------------------------


def _profile_energy(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray,
                    angles: np.ndarray, n_rows: int) -> np.ndarray:
    """Sum of squares of the projection profile along each slant (linear binning)."""
    energy = np.empty(len(angles))
    pad = n_rows  # slanted rows stay within [-pad, 2 * pad)
    for k, angle in enumerate(angles):
        pos = rows + cols * np.tan(np.radians(angle)) + pad
        base = np.floor(pos)
        frac = pos - base
        base = base.astype(np.int64)
        prof = np.bincount(base, weights * (1.0 - frac), minlength=3 * pad + 2)
        prof += np.bincount(base + 1, weights * frac, minlength=3 * pad + 2)[:prof.size]
        energy[k] = float(np.dot(prof, prof))
    return energy


def _skew_from_darkness(dark: np.ndarray) -> float:
    ink = dark > _INK
    rows, cols = np.nonzero(ink)
    if rows.size < 100:
        return 0.0
    weights = dark[rows, cols].astype(np.float64)
    h, w = dark.shape
    rows = rows - (h - 1) / 2.0
    cols = cols - (w - 1) / 2.0
    best, step = 0.0, 0.1
    angles = np.arange(-MAX_SKEW_DEG, MAX_SKEW_DEG + step / 2, step)
    for _ in range(3):
        energy = _profile_energy(rows, cols, weights, angles, h)
        best = float(angles[int(np.argmax(energy))])
        step /= 5.0
        angles = best + np.arange(-5, 6) * step
    return float(np.clip(best, -MAX_SKEW_DEG, MAX_SKEW_DEG))


def estimate_skew(page: np.ndarray) -> float:
    """Skew of a page, in degrees.

    Maximises the variance of the horizontal projection profile over slants
    of +-``MAX_SKEW_DEG`` degrees: first in steps of 0.1 degrees, then of
    0.02 and 0.004 degrees around the best one. Staff lines make the profile
    sharpest when the slant follows them.

    Parameters
    ----------
    page : np.ndarray, shape (height, width), uint8
        Grayscale page, white = 255.

    Returns
    -------
    float
        Angle in degrees, positive counterclockwise: ``deskew(page, angle)``
        straightens the page, and a straight page rotated with
        ``scipy.ndimage.rotate(page, a)`` has skew ``a``. Skews beyond +-3
        degrees are reported as +-3.
    """
    return _skew_from_darkness(_darkness(page))


def deskew(page: np.ndarray, angle: float) -> np.ndarray:
    """Rotate a page by ``-angle`` degrees about its centre, filling with white.

    Parameters
    ----------
    page : np.ndarray, shape (height, width), uint8
        Grayscale page, white = 255.
    angle : float
        The page's skew in degrees (see :func:`estimate_skew`).

    Returns
    -------
    np.ndarray, shape (height, width), uint8
        The straightened page, same shape (corners rotated out are cut).
    """
    page = _as_uint8(page)
    if angle == 0.0:
        return page.copy()
    out = ndimage.rotate(page.astype(np.float32), -angle, reshape=False, order=1,
                         mode="constant", cval=255.0)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _to_original(row: float, col: float, shape: tuple[int, int],
                 angle: float) -> tuple[float, float]:
    """(row, col) of the page before :func:`deskew` of a pixel of the deskewed page."""
    cy, cx = (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0
    dy, dx = row - cy, col - cx
    a = np.radians(angle)
    return (cy + dy * np.cos(a) - dx * np.sin(a), cx + dx * np.cos(a) + dy * np.sin(a))


# --------------------------------------------------------------------------
# Staves
# --------------------------------------------------------------------------


@dataclass
class _Analysis:
    """What staff and system detection share about one straight page."""

    dark: np.ndarray
    line_distance: float
    """Distance between staff-line centres, in pixels (staff space + line height)."""
    staves: list[Staff]


def _ink_columns(dark: np.ndarray) -> tuple[int, int]:
    """First and one-past-last column holding a noticeable amount of ink."""
    ink = (dark > _INK).sum(axis=0)
    cols = np.flatnonzero(ink >= max(3, int(0.005 * dark.shape[0])))
    if cols.size == 0:
        return 0, dark.shape[1]
    return int(cols[0]), int(cols[-1]) + 1


def _thin_lines(dark: np.ndarray, spacing: float) -> np.ndarray:
    """Darkness of thin horizontal strokes only (a vertical top-hat).

    Each pixel keeps how much darker it is than the darker of the two pixels
    ``0.4 spacing`` above and below it. A staff line (thinner than that) keeps
    its darkness; beams, noteheads and the inside of letters, which are as
    dark a little above or below, drop to zero.
    """
    t = max(2, int(round(0.4 * spacing)))
    padded = np.pad(dark, ((t, t), (0, 0)), mode="edge")
    return np.clip(dark - np.maximum(padded[:-2 * t], padded[2 * t:]), 0.0, None)


def _comb_scores(profile: np.ndarray, starts: np.ndarray,
                 spacings: np.ndarray) -> np.ndarray:
    """Comb response for every (start row, spacing): lines minus spaces.

    The response of a staff whose top line is at ``start`` with lines
    ``spacing`` apart is the profile summed over the five line rows minus
    its sum over the middle rows of the four spaces (linear interpolation
    between rows). Shape (len(spacings), len(starts)).
    """
    x = np.arange(profile.size)
    k = np.arange(5)
    lines = starts[None, :, None] + spacings[:, None, None] * k[None, None, :]
    spaces = lines[..., :4] + 0.5 * spacings[:, None, None]
    return (np.interp(lines, x, profile).sum(axis=2)
            - np.interp(spaces, x, profile).sum(axis=2))


def _refine(profile: np.ndarray, start: float, spacing: float) -> tuple[float, float]:
    """Start row and spacing maximising the comb response near a coarse fit."""
    starts = start + np.arange(-6, 7) * 0.1
    spacings = spacing * (1.0 + np.arange(-6, 7) * 0.005)
    scores = _comb_scores(profile, starts, spacings)
    i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return float(starts[j]), float(spacings[i])


@dataclass
class _Fit:
    """A five-line comb checked against the page."""

    lines: np.ndarray
    left: int
    right: int
    seen: float
    """Fraction of the columns in [left, right) where at least four lines show."""
    presence: float
    """Smallest fraction, over the five lines, of those columns where the line shows."""
    support: int
    """Smallest number, over the five lines, of those columns where the line shows."""

    @property
    def width(self) -> int:
        return self.right - self.left


def _fit_comb(smooth: np.ndarray, lines: np.ndarray, spacing: float) -> _Fit:
    """Where the five lines ``lines`` run on the page, and how well they show.

    A line shows in a column when, within one row of it, the page is darker
    than within one row of the middle of the space(s) next to it, by 40% of
    the staff's typical line contrast (at least 0.03 of the dynamic range);
    ``smooth`` is the darkness after a 5-pixel horizontal mean. A column is
    on the staff when at least four lines show there. Gaps of up to three
    spacings (clefs, chords and beams hiding the lines) are closed; the
    staff runs from the first to the last stretch of columns that is at
    least two spacings long.
    """
    h, w = smooth.shape

    def row(y: float, reach: int) -> np.ndarray:
        r = int(round(y))
        if not 0 <= r < h:
            return np.zeros(w, dtype=smooth.dtype)
        return smooth[max(r - reach, 0):min(r + reach + 1, h)].max(axis=0)

    contrast = np.zeros((5, w), dtype=np.float32)
    for k, y in enumerate(lines):
        above, below = row(y - spacing / 2.0, 1), row(y + spacing / 2.0, 1)
        spaces = np.minimum(above, below) if 0 < k < 4 else (below if k == 0 else above)
        contrast[k] = row(y, 1) - spaces
    mean = contrast.mean(axis=0)
    typical = float(np.median(mean[mean > 0.03])) if (mean > 0.03).any() else 0.0
    shows = contrast > max(0.4 * typical, 0.03)
    on = shows.sum(axis=0) >= 4
    gap = max(1, int(round(3 * spacing)))
    closed = ndimage.binary_closing(np.pad(on, gap), structure=np.ones(gap + 1, bool))[gap:-gap]
    labels, n = ndimage.label(closed | on)
    sizes = np.bincount(labels)[1:]
    keep = np.flatnonzero(sizes >= 2.0 * spacing) + 1
    if keep.size == 0:
        return _Fit(lines, 0, 0, 0.0, 0.0, 0)
    cols = np.flatnonzero(np.isin(labels, keep))
    left, right = int(cols[0]), int(cols[-1]) + 1
    counts = shows[:, left:right].sum(axis=1)
    return _Fit(lines, left, right, float(on[left:right].mean()),
                float(counts.min() / (right - left)), int(counts.min()))


def _continuity(dark: np.ndarray, lines: np.ndarray, left: int, right: int,
                distance: float) -> float:
    """How continuous the five lines are: the median over the lines of the fraction
    of the columns in ``[left, right)`` that lie in a run of ink at least two line
    distances long.

    A staff line is ink from end to end: whatever covers it (a notehead, a stem,
    a beam) is ink too, so its runs are as long as the staff, and a blurred
    scan only dims it. A column is ink on a line when, within one row of it,
    the darkness exceeds half the line's median darkness (at least ``_INK``).
    The rows of a text page, which a five-line comb can take for a staff,
    break into letters and words and score 0.0 to 0.25; staves score 0.85
    to 1.0, also on blurred and noisy scans.
    """
    h = dark.shape[0]
    min_run = 2.0 * distance
    fractions = []
    for y in lines:
        r = int(round(y))
        line = dark[max(r - 1, 0):min(r + 2, h), left:right].max(axis=0)
        ink = line > max(0.5 * float(np.median(line)), _INK)
        labels, _ = ndimage.label(ink)
        long_run = np.bincount(labels) >= min_run
        long_run[0] = False
        fractions.append(float(long_run[labels].mean()))
    return float(np.median(fractions))


def _checked_distance(distance: float, profile: np.ndarray) -> float:
    """The run-length line distance, or the comb's when noise fooled the run lengths.

    Heavy noise breaks faint staff lines into short runs, and the most
    frequent black+white pair then measures the noise. The best five-line
    comb response of the row profile is computed for spacings from 3 to
    ``height / 35`` pixels (a comb subtracts its spaces, so it does not
    respond at half or twice the true spacing); when the run-length
    distance responds with less than 70% of the best spacing, the best
    spacing is used. NaN when neither finds anything.
    """
    hi = max(8.0, profile.size / 35.0)
    grid = 3.0 * 1.02 ** np.arange(int(np.log(hi / 3.0) / np.log(1.02)) + 1)
    starts = np.arange(0.0, max(profile.size - 4 * hi, 1.0), 0.5)
    quality = _comb_scores(profile, starts, grid).max(axis=1)
    if not quality.size or quality.max() <= 0:
        return distance
    best = float(grid[int(np.argmax(quality))])
    if not np.isfinite(distance) or not 3.0 <= distance <= hi:
        return best
    own = float(np.interp(distance, grid, quality))
    return distance if own >= 0.7 * quality.max() else best


def _analyse(page: np.ndarray) -> _Analysis:
    """Darkness, line distance and staves of a straight page.

    The projection profile of the thin horizontal strokes over the page's
    ink columns is matched with a five-line comb for every start row (in
    half pixels) and spacing (0.9 to 1.1 line distances). Local maxima of
    the best response are taken best first, down to 8% of the first staff's
    response, and refined to 0.1 pixel. A row of beams or ledger lines next
    to a staff can pull a comb one line off, so the comb is also tried one
    and two lines up and down, and the one whose weakest line shows in the
    most columns is kept. It is accepted when it keeps 2.5 spacings away
    from the staves accepted before, runs along at least ``max(10
    spacings, 10% of the page width)``, and at least four lines show in
    60% of its columns and every line in 50% (see :func:`_fit_comb`), and
    its lines are continuous ink (see :func:`_continuity`: the rows of a
    text page are not).
    Narrow staves that line up with no other staff are dropped at the end
    (see :func:`_aligned`).
    """
    dark = _darkness(page)
    c0, c1 = _ink_columns(dark)
    distance = _checked_distance(_line_distance(_binarize(dark)),
                                 dark[:, c0:c1].mean(axis=1).astype(np.float64))
    if not np.isfinite(distance):
        return _Analysis(dark, float("nan"), [])
    thin = _thin_lines(dark[:, c0:c1], distance)
    profile = ndimage.gaussian_filter1d(thin.mean(axis=1).astype(np.float64), 0.7)
    spacings = distance * np.linspace(0.9, 1.1, 11)
    starts = np.arange(0.0, max(profile.size - 4 * spacings[0], 1.0), 0.5)
    scores = _comb_scores(profile, starts, spacings)
    best = scores.max(axis=0)
    best_spacing = spacings[np.argmax(scores, axis=0)]
    window = 2 * int(round(distance)) + 1  # in half pixels: +-half a line distance
    peaks = np.flatnonzero((best == ndimage.maximum_filter1d(best, window, mode="nearest"))
                           & (best > 0))
    peaks = peaks[np.argsort(-best[peaks])]
    smooth = ndimage.uniform_filter1d(dark, size=5, axis=1, mode="nearest")
    min_width = max(10.0 * distance, 0.1 * dark.shape[1])
    staves: list[Staff] = []
    strongest = None

    def free(lines: np.ndarray, spacing: float) -> bool:
        return all(lines[0] > s.bottom + 2.5 * spacing or lines[-1] < s.top - 2.5 * spacing
                   for s in staves)

    for p in peaks:
        if strongest is not None and best[p] < 0.08 * strongest:
            break
        top, spacing = _refine(profile, float(starts[p]), float(best_spacing[p]))
        if not free(top + spacing * np.arange(5), spacing):
            continue
        fits = [_fit_comb(smooth, top + spacing * np.arange(5), spacing)]
        for shift in (-1, 1, -2, 2):
            guess = top + shift * spacing + np.arange(-3, 4) * 0.5
            near = _comb_scores(profile, guess, spacings)
            i, j = np.unravel_index(int(np.argmax(near)), near.shape)
            start, step = _refine(profile, float(guess[j]), float(spacings[i]))
            fits.append(_fit_comb(smooth, start + step * np.arange(5), step))
        fits = [f for f in fits if free(f.lines, spacing) and f.width >= min_width]
        if not fits:
            continue
        fit = max(fits, key=lambda f: f.support)
        if (fit.seen >= 0.6 and fit.presence >= 0.5
                and _continuity(dark, fit.lines, fit.left, fit.right, distance) >= _CONTINUOUS):
            strongest = best[p] if strongest is None else strongest
            staves.append(Staff(lines=tuple(float(y) for y in fit.lines),
                                left=fit.left, right=fit.right))
    staves.sort(key=lambda s: s.top)
    return _Analysis(dark, distance, _aligned(staves, distance))


def _aligned(staves: list[Staff], spacing: float) -> list[Staff]:
    """Drop narrow staves whose ends line up with no other staff of the page.

    Staves of a page start (or, for an indented first system, end) at the
    same column; a staff narrower than half the widest one that shares
    neither end with another staff (within two spacings) is taken for a
    stack of ledger lines.
    """
    if len(staves) < 2:
        return staves
    widest = max(s.right - s.left for s in staves)
    tol = 2.0 * spacing
    return [s for s in staves
            if s.right - s.left >= 0.5 * widest
            or any(o is not s and (abs(o.left - s.left) <= tol or abs(o.right - s.right) <= tol)
                   for o in staves)]


def detect_staves(page: np.ndarray) -> list[Staff]:
    """Find the five-line staves of a straight page.

    Parameters
    ----------
    page : np.ndarray, shape (height, width), uint8
        Grayscale page, white = 255, with a skew below about 0.2 degrees
        (straighten it first with :func:`estimate_skew` and :func:`deskew`).

    Returns
    -------
    list of Staff
        Top to bottom, in page pixels.
    """
    return _analyse(page).staves


# --------------------------------------------------------------------------
# Systems
# --------------------------------------------------------------------------


def _joined(dark: np.ndarray, upper: Staff, lower: Staff, spacing: float) -> bool:
    """Whether vertical ink near the staves' left ends joins them (start barline, brace).

    The rows strictly between the upper staff's bottom line and the lower
    staff's top line are searched from three spacings left to three
    spacings right of the staves' leftmost start, in windows one spacing
    wide. Darkness is averaged over one spacing vertically (a barline is
    continuous, noise is not) and the window's background level is
    subtracted; in some window, at least 90% of the rows must hold
    ``_JOIN_INK`` of ink (a thin grey barline holds about 0.5).
    """
    left = min(upper.left, lower.left)
    r0 = int(np.ceil(upper.bottom + 0.5 * spacing))
    r1 = int(np.floor(lower.top - 0.5 * spacing)) + 1
    if r1 <= r0:
        return True
    reach = int(round(3 * spacing))
    c0, c1 = max(left - reach, 0), min(left + reach + 1, dark.shape[1])
    width = max(2, int(round(spacing)))
    if c1 - c0 < width:
        return False
    column = ndimage.uniform_filter1d(dark[:, c0:c1], width, axis=0)[r0:r1]
    column = column - np.median(column)
    ink = ndimage.uniform_filter1d(column, width, axis=1, mode="constant") * width
    ink = ink[:, width // 2:ink.shape[1] - (width - 1) // 2]  # windows inside [c0, c1)
    return bool(((ink >= _JOIN_INK).mean(axis=0)).max() >= 0.9)


def _systems_of(analysis: _Analysis) -> list[list[Staff]]:
    groups: list[list[Staff]] = []
    for staff in analysis.staves:
        if groups and _joined(analysis.dark, groups[-1][-1], staff, analysis.line_distance):
            groups[-1].append(staff)
        else:
            groups.append([staff])
    return groups


def _group_box(group: list[Staff], page_index: int) -> SystemBox:
    """The box of a system's staves: first to last staff line, widest extent."""
    return SystemBox(page=page_index, top=group[0].top, left=float(min(s.left for s in group)),
                     bottom=group[-1].bottom, right=float(max(s.right for s in group)))


def _boxes(analysis: _Analysis, page_index: int) -> list[SystemBox]:
    return [_group_box(g, page_index) for g in _systems_of(analysis)]


def _straight_systems(page: np.ndarray, page_index: int) -> list[SystemBox]:
    """Systems of a straight page, in its own pixels."""
    return _boxes(_analyse(page), page_index)


def _map_box(box: SystemBox, shape: tuple[int, int], angle: float) -> SystemBox:
    """A deskewed page's box in the pixels of the page before deskewing.

    The box keeps its height and width; its centre is rotated back. Top and
    bottom are then the rows of the first and last staff line at the
    system's middle column.
    """
    if angle == 0.0:
        return box
    row, col = _to_original((box.top + box.bottom) / 2.0, (box.left + box.right) / 2.0,
                            shape, angle)
    half_h, half_w = (box.bottom - box.top) / 2.0, (box.right - box.left) / 2.0
    return SystemBox(page=box.page, top=row - half_h, left=col - half_w,
                     bottom=row + half_h, right=col + half_w)


def detect_systems(page: np.ndarray, page_index: int = 0,
                   skew: float | None = None) -> list[SystemBox]:
    """Find the staff systems of a page.

    The page is straightened first when its skew exceeds ``MIN_DESKEW_DEG``.
    Staves joined near their left ends by vertical ink (start barline,
    brace or bracket) form one system.

    Parameters
    ----------
    page : np.ndarray, shape (height, width), uint8
        Grayscale page, white = 255.
    page_index : int
        Page number stored in the boxes.
    skew : float, optional
        The page's skew in degrees; estimated with :func:`estimate_skew`
        when not given.

    Returns
    -------
    list of SystemBox
        Top to bottom, in pixels of ``page`` as given (not deskewed): top
        and bottom are the rows of the system's first and last staff line,
        left and right its staff lines' extent (for a skewed page: the
        deskewed box rotated back about its centre, so the rows are those of
        the lines at the system's middle column).
    """
    page = _as_uint8(page)
    if skew is None:
        skew = estimate_skew(page)
    if abs(skew) <= MIN_DESKEW_DEG:
        return _straight_systems(page, page_index)
    return [_map_box(b, page.shape, skew)
            for b in _straight_systems(deskew(page, skew), page_index)]


def measure_line_distance(page: np.ndarray) -> float:
    """Distance between the centres of neighbouring staff lines of a straight page.

    The most frequent sum of a vertical black run and the white run below it
    (checked against a five-line comb, see :func:`_checked_distance`): the
    staff space plus the line height, which blur does not change. Within 1.5%
    of the engraver's own figure on clean and scan-like pages from 0.6 to 2
    times the training data's size.

    Parameters
    ----------
    page : np.ndarray, shape (height, width), uint8
        Grayscale page, white = 255, straightened (see :func:`deskew`).

    Returns
    -------
    float
        In pixels; NaN when the page holds no staff.
    """
    analysis = _analyse(_as_uint8(page))
    return analysis.line_distance if analysis.staves else float("nan")


def rescale_page(page: np.ndarray, factor: float) -> np.ndarray:
    """A page resized by ``factor`` in both directions (Lanczos), white = 255.

    Parameters
    ----------
    page : np.ndarray, shape (height, width), uint8
    factor : float
        > 1 enlarges.

    Returns
    -------
    np.ndarray, shape (round(height * factor), round(width * factor)), uint8
    """
    page = _as_uint8(page)
    h, w = page.shape
    size = (max(1, int(round(w * factor))), max(1, int(round(h * factor))))
    return np.asarray(Image.fromarray(page).resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)


def scale_box(box: SystemBox, factor: float) -> SystemBox:
    """A system box in the pixels of its page resized by ``factor`` (pixel centres kept)."""
    def f(v: float) -> float:
        return (v + 0.5) * factor - 0.5

    return SystemBox(page=box.page, top=f(box.top), left=f(box.left), bottom=f(box.bottom),
                     right=f(box.right))


@dataclass
class UnrolledPages:
    """Pages straightened, scaled to one staff size and unrolled, with what was found.

    Attributes
    ----------
    unrolled : Unrolled
        The strip, made by :func:`audio_sheet_retrieval.data.unroll.unroll_systems`
        from the straightened and scaled pages; ``unrolled.systems`` are in
        their pixels.
    boxes : list of SystemBox
        The same systems in the same (reading) order, in pixels of the pages
        as given (see :func:`detect_systems`).
    staff_counts : list of int
        Staves of each system of ``unrolled.systems``.
    scales : list of float
        Factor each page was resized by (1.0: not resized), one per page.
    line_distances_px : list of float
        Distance between staff-line centres measured on each page as given
        (see :func:`measure_line_distance`), NaN on a page without staves.
    left_out : list of int
        Staff counts of the systems left out because they did not have
        ``staves_per_system`` staves.
    """

    unrolled: Unrolled
    boxes: list[SystemBox]
    staff_counts: list[int]
    scales: list[float]
    line_distances_px: list[float]
    left_out: list[int]


def unroll_pages(pages: list[np.ndarray], height: int = STRIP_HEIGHT,
                 line_distance_px: float | None = None, staves_per_system: int | None = None,
                 tolerance: float = SCALE_TOLERANCE) -> UnrolledPages:
    """Straighten pages, find their systems, scale them to one staff size and unroll them.

    Parameters
    ----------
    pages : list of np.ndarray
        Grayscale uint8 pages (white = 255), e.g. from
        :func:`audio_sheet_retrieval.sheet.pages.load_pages`.
    height : int
        Height of the strip, in pixels.
    line_distance_px : float, optional
        Distance between staff-line centres the strip should show (e.g.
        ``TRAINED_LINE_DISTANCE_PX``, what a model was trained on). Every page
        whose measured distance differs by more than ``tolerance`` (a fraction)
        is resized by their ratio, and its systems are found on the resized
        page (the detector is surest at the training data's size: a staff of
        a page printed at 0.6 of it can be missed). None: pages keep their size.
    staves_per_system : int, optional
        Leave out the systems with another number of staves (e.g. 2 for a
        model trained on piano grand staves). None: keep every system.
    tolerance : float

    Returns
    -------
    UnrolledPages
    """
    straight, found, scales, distances, left_out = [], [], [], [], []
    for index, page in enumerate(pages):
        page = _as_uint8(page)
        skew = estimate_skew(page)
        if abs(skew) <= MIN_DESKEW_DEG:
            skew = 0.0
        flat = deskew(page, skew) if skew else page
        analysis = _analyse(flat)
        distance = analysis.line_distance if analysis.staves else float("nan")
        scale = 1.0
        if line_distance_px is not None and np.isfinite(distance):
            if abs(line_distance_px / distance - 1.0) > tolerance:
                scale = float(line_distance_px / distance)
                flat = rescale_page(flat, scale)
                analysis = _analyse(flat)  # again at the trained size, where it is surest
        straight.append(flat)
        scales.append(scale)
        distances.append(float(distance))
        for group in _systems_of(analysis):
            if staves_per_system is not None and len(group) != staves_per_system:
                left_out.append(len(group))
                continue
            box = _group_box(group, index)
            as_given = scale_box(box, 1.0 / scale) if scale != 1.0 else box
            found.append((box, _map_box(as_given, page.shape, skew), len(group)))
    found.sort(key=lambda item: (item[0].page, item[0].top))
    unrolled = unroll_systems(straight, [b for b, _, _ in found], height=height)
    return UnrolledPages(unrolled, [b for _, b, _ in found], [n for _, _, n in found], scales,
                         distances, left_out)


def unroll_page_images(pages: list[np.ndarray],
                       height: int = STRIP_HEIGHT) -> tuple[Unrolled, list[SystemBox]]:
    """Straighten pages, find their systems and unroll them into one strip, at their own size.

    Parameters
    ----------
    pages : list of np.ndarray
        Grayscale uint8 pages (white = 255), e.g. from
        :func:`audio_sheet_retrieval.sheet.pages.load_pages`.
    height : int
        Height of the strip, in pixels.

    Returns
    -------
    unrolled : Unrolled
        The strip, made by :func:`audio_sheet_retrieval.data.unroll.unroll_systems`
        from the deskewed pages (pages with a skew above ``MIN_DESKEW_DEG``
        degrees are rotated); ``unrolled.systems`` are in deskewed page pixels.
    systems : list of SystemBox
        The same systems, in the same (reading) order, in pixels of the pages
        as given (see :func:`detect_systems`).

    See Also
    --------
    unroll_pages : the same, scaling the pages to one staff size.
    """
    out = unroll_pages(pages, height)
    return out.unrolled, out.boxes


def check_system_staves(label: str, counts: list[int], warn: Warn,
                        expected: int = STAVES_PER_SYSTEM) -> None:
    """Refuse a score whose systems mostly have another number of staves; warn about a few.

    Parameters
    ----------
    label : str
        The score's file(s), named in the messages.
    counts : list of int
        Staves of each of the score's systems.
    warn : callable
        Receives the warning when some (at most half) of the systems have
        another number of staves (the caller leaves them out).
    expected : int
        Staves per system the model was trained on.

    Raises
    ------
    AsrError
        When more than half of the systems have another number of staves
        (a quartet page: systems of 4).
    """
    other = [c for c in counts if c != expected]
    if not other:
        return
    kinds = " or ".join(str(c) for c in sorted(set(other)))
    what = (f"{len(other)} of its {len(counts)} systems have {kinds} "
            f"{'staff' if kinds == '1' else 'staves'}")
    if 2 * len(other) > len(counts):
        raise AsrError(f"{label}: not a piano score: {what}, not {expected} (a piano grand staff, "
                       "the only kind the model reads); give a piano score or a piano reduction")
    warn(f"{label}: {what}, not {expected} (a piano grand staff); they are left out")

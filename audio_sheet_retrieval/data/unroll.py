"""Unrolling staff systems into one long strip, and mapping page pixels onto it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRIP_HEIGHT = 200
"""Height of the unrolled strip: +-100 px around each system's vertical centre."""


@dataclass(frozen=True)
class SystemBox:
    """A staff system on a page, in page pixels (``bottom``/``right`` exclusive)."""

    page: int
    top: float
    left: float
    bottom: float
    right: float

    @property
    def center_row(self) -> int:
        return int(round((self.top + self.bottom) / 2.0))


@dataclass
class Unrolled:
    """Systems side by side in one strip.

    Attributes
    ----------
    strip : np.ndarray, shape (height, width), uint8
    systems : list of SystemBox
        In reading order (page, then top).
    x_offsets : np.ndarray, shape (n_systems,)
        Strip column where each system starts, in pixels.
    """

    strip: np.ndarray
    systems: list[SystemBox]
    x_offsets: np.ndarray

    def to_strip(self, system: int, row: float, col: float) -> tuple[float, float]:
        """(row, column) in the strip of a page pixel ``(row, col)`` of ``system``."""
        box = self.systems[system]
        height = self.strip.shape[0]
        return (row - (box.center_row - height // 2),
                self.x_offsets[system] + col - int(round(box.left)))

    def from_strip(self, x: float) -> tuple[int, int, float]:
        """(system index, page, page column) of strip column ``x`` (pixels)."""
        k = int(np.clip(np.searchsorted(self.x_offsets, x, side="right") - 1, 0, len(self.systems) - 1))
        box = self.systems[k]
        return k, box.page, float(x - self.x_offsets[k] + int(round(box.left)))

    def system_of(self, page: int, row: float) -> int:
        """Index of the system on ``page`` whose vertical span is nearest to ``row``."""
        return nearest_system(self.systems, page, row)


def nearest_system(systems, page: int, row: float) -> int:
    """Index of the system (anything with ``page``, ``top``, ``bottom``) on ``page`` whose
    vertical span is nearest to ``row`` (pixels); -1 if the page has none."""
    best, best_d = -1, np.inf
    for k, box in enumerate(systems):
        if box.page != page:
            continue
        d = max(box.top - row, row - box.bottom, 0.0)
        if d < best_d:
            best, best_d = k, d
    return best


def unroll_systems(pages: list[np.ndarray], systems: list[SystemBox],
                   height: int = STRIP_HEIGHT) -> Unrolled:
    """Cut a band of ``height`` rows around each system's centre and join them.

    Parameters
    ----------
    pages : list of np.ndarray
        Grayscale uint8 page images (white = 255).
    systems : list of SystemBox
        Systems in page pixels; they are put in reading order.
    height : int
        Band height, in pixels (200 in MSMD).

    Returns
    -------
    Unrolled
        Rows beyond a page's border are white.
    """
    order = sorted(systems, key=lambda s: (s.page, s.top))
    bands, offsets, x = [], [], 0
    for box in order:
        page = pages[box.page]
        top = box.center_row - height // 2
        left, right = int(round(box.left)), int(round(box.right))
        band = np.full((height, max(right - left, 1)), 255, dtype=np.uint8)
        lo, hi = max(top, 0), min(top + height, page.shape[0])
        if hi > lo:
            band[lo - top:hi - top, :] = page[lo:hi, left:left + band.shape[1]]
        bands.append(band)
        offsets.append(x)
        x += band.shape[1]
    strip = np.concatenate(bands, axis=1) if bands else np.full((height, 0), 255, np.uint8)
    return Unrolled(strip, order, np.asarray(offsets, dtype=np.int64))

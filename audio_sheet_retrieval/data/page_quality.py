"""Scan-like degradation of sheet images: geometry, print, optics, sensor, file.

Engraved pages are perfect: pure black on pure white, straight, sharp.
Scanned or photographed pages are not. This module degrades grayscale uint8
images (white = 255, ink = 0, as the engravers and :func:`~audio_sheet_retrieval.data.pools.sheet_snippet`
produce them) with a chain of stages in the physical order of a scan:

1. :func:`warp` -- slight rotation, staff-height scaling and a smooth
   non-linear warp (paper not flat on the glass), one backward map applied
   with PIL's mesh transform;
2. :func:`binarize` -- a bi-level copy (photocopy, fax, 1-bit scan): the
   engraving thresholded, which thickens strokes and breaks the thinnest
   lines where they are lightest (staff lines are 1 px, grey 120-170, in
   the 835 px wide engravings, so thresholds stay above 170);
3. :func:`print_levels` -- grey ink and off-white paper, with low-frequency
   texture in both, and optionally a shadow along one edge (a book's gutter);
4. :func:`blur` -- the scanner's optics;
5. :func:`add_noise` -- sensor noise and dust specks;
6. :func:`jpeg` -- compression artefacts.

Each stage takes its parameters from :class:`ScanOptions` and draws them
from a :class:`numpy.random.Generator`. :func:`degrade_snippet` is the
training-time augmentation for 160 x 200 snippets (each stage applied with
its probability); :func:`degrade_page` degrades a whole page at a named
level of :data:`PAGE_LEVELS` (every stage drawn within the level's ranges)
and returns the geometric map with it, so that notehead and system
coordinates can follow the page. Everything is numpy and PIL: about half a
millisecond per snippet with the defaults, 3-4 times less than a comparable
albumentations pipeline and 15-25 times less than augraphy
(``bench/augmentation.py``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter
from scipy.special import ndtri

_GAUSS_LUT = ndtri((np.arange(256) + 0.5) / 256).astype(np.float32)
"""Standard normal quantiles of 256 equiprobable levels: uint8 draws -> Gaussian noise."""


@dataclass(frozen=True)
class ScanOptions:
    """Ranges of the scan degradations; each parameter is drawn uniformly.

    Attributes
    ----------
    rotation_deg : float
        Largest rotation, degrees (drawn in ``[-rotation_deg, rotation_deg]``).
    scale : (float, float)
        Range of the staff-height scaling (> 1 enlarges the music).
    warp_px : float
        Largest displacement of the smooth warp, pixels (0 for snippets: over
        200 px a warp is barely more than the affine map, which is faster).
    warp_cells : int
        Cells of the warp's mesh along the longer side (its smoothness); one
        cell (a bilinear map of the corners) suits snippets and is fastest.
    ink : (int, int)
        Range of the ink's grey level (0 = black).
    paper : (int, int)
        Range of the paper's grey level (255 = white).
    texture : float
        Standard deviation of the low-frequency texture of paper and ink, grey levels.
    shadow : float
        Largest darkening of the paper along one edge, as a fraction (0 = none).
    blur_sigma : (float, float)
        Range of the Gaussian blur's radius, pixels.
    noise_sd : (float, float)
        Range of the sensor noise's standard deviation, grey levels.
    specks : float
        Dust specks per 10,000 pixels (Poisson mean).
    threshold : (int, int)
        Range of the binarization threshold on the engraving's grey levels
        (below 170 the 1-px staff lines of 835 px wide pages vanish).
    jpeg_quality : (int, int)
        Range of the JPEG quality (1-95).
    p_geometry, p_print, p_blur, p_noise, p_binarize, p_jpeg : float
        Probability of each stage in :func:`degrade_snippet` (pages apply the
        stages whose probability is positive).
    """

    rotation_deg: float = 1.0
    scale: tuple[float, float] = (0.9, 1.1)
    warp_px: float = 0.0
    warp_cells: int = 1
    ink: tuple[int, int] = (0, 70)
    paper: tuple[int, int] = (205, 255)
    texture: float = 6.0
    shadow: float = 0.0
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    noise_sd: tuple[float, float] = (2.0, 12.0)
    specks: float = 1.0
    threshold: tuple[int, int] = (175, 230)
    jpeg_quality: tuple[int, int] = (25, 90)
    p_geometry: float = 0.5
    p_print: float = 0.7
    p_blur: float = 0.5
    p_noise: float = 0.5
    p_binarize: float = 0.15
    p_jpeg: float = 0.3

    def __post_init__(self):
        for name in ("scale", "ink", "paper", "blur_sigma", "noise_sd", "threshold", "jpeg_quality"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"ScanOptions.{name}: low {lo} above high {hi}")
        if self.scale[0] <= 0 or not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 95:
            raise ValueError("ScanOptions: scale must be > 0 and jpeg_quality within 1-95")
        if self.ink[1] >= self.paper[0]:
            raise ValueError("ScanOptions: ink must stay darker than paper")
        if self.warp_cells < 1 or not 0 <= self.shadow < 1:
            raise ValueError("ScanOptions: warp_cells must be >= 1 and shadow within [0, 1)")


NO_DEGRADATION = ScanOptions(p_geometry=0, p_print=0, p_blur=0, p_noise=0, p_binarize=0, p_jpeg=0)
_ALWAYS = dict(p_geometry=1, p_print=1, p_blur=1, p_noise=1, p_jpeg=1)

PAGE_LEVELS: dict[str, ScanOptions] = {
    "clean": NO_DEGRADATION,
    "scan": ScanOptions(rotation_deg=0.5, scale=(0.97, 1.03), warp_px=1.0, warp_cells=6,
                        ink=(10, 40), paper=(225, 245), texture=3.0, shadow=0.05,
                        blur_sigma=(0.4, 0.7), noise_sd=(2.0, 4.0), specks=0.05,
                        jpeg_quality=(70, 85), p_binarize=0.0, **_ALWAYS),
    "poor scan": ScanOptions(rotation_deg=1.5, scale=(0.9, 1.1), warp_px=3.0, warp_cells=6,
                             ink=(30, 80), paper=(190, 225), texture=8.0, shadow=0.3,
                             blur_sigma=(0.8, 1.2), noise_sd=(6.0, 10.0), specks=0.3,
                             threshold=(180, 220), jpeg_quality=(30, 50), p_binarize=0.5, **_ALWAYS),
}
"""Named page-quality levels for the benchmark's page-quality factor.

``clean``: the engraving as is. ``scan``: a careful office scan (a fraction
of a degree, light blur, faint texture, JPEG 70-85). ``poor scan``: a quick
scan of a worn photocopy (up to 1.5 degrees, a warp of 3 px, bi-level half
the time, grey ink on grey paper, a gutter shadow, noise, JPEG 30-50).
"""


# --------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Warp:
    """A backward map from output to input pixels: rotation, scale, smooth warp.

    The map sends an output point ``d`` (x, y; pixel centres at ``i + 0.5``)
    to the input point ``c + A (d + D(d) - c)``, with ``c`` the image centre,
    ``A`` the inverse of the rotation and scaling, and ``D`` the bilinear
    interpolation of the displacements at the vertices of a regular mesh.

    Attributes
    ----------
    shape : (int, int)
        Image height and width, pixels.
    matrix : np.ndarray, shape (2, 2)
        ``A``, acting on (x, y).
    vertices_x, vertices_y : np.ndarray, shape (nx + 1,), (ny + 1,)
        Mesh vertex coordinates, pixels.
    displacement : np.ndarray, shape (ny + 1, nx + 1, 2)
        ``D`` at the vertices (x, y), pixels.
    """

    shape: tuple[int, int]
    matrix: np.ndarray
    vertices_x: np.ndarray
    vertices_y: np.ndarray
    displacement: np.ndarray

    def source(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Input points of output points (x, y), arrays of any one shape."""
        gx = np.interp(x, self.vertices_x, np.arange(len(self.vertices_x)))
        gy = np.interp(y, self.vertices_y, np.arange(len(self.vertices_y)))
        i = np.clip(np.floor(gy).astype(int), 0, len(self.vertices_y) - 2)
        j = np.clip(np.floor(gx).astype(int), 0, len(self.vertices_x) - 2)
        u, v = gx - j, gy - i
        d = self.displacement
        disp = ((1 - u) * (1 - v))[..., None] * d[i, j] + (u * (1 - v))[..., None] * d[i, j + 1] \
            + ((1 - u) * v)[..., None] * d[i + 1, j] + (u * v)[..., None] * d[i + 1, j + 1]
        cy, cx = self.shape[0] / 2, self.shape[1] / 2
        px, py = x + disp[..., 0] - cx, y + disp[..., 1] - cy
        a = self.matrix
        return cx + a[0, 0] * px + a[0, 1] * py, cy + a[1, 0] * px + a[1, 1] * py

    def map_points(self, rows_cols: np.ndarray, iterations: int = 20) -> np.ndarray:
        """Where input pixels land in the output (the inverse of :meth:`source`).

        Parameters
        ----------
        rows_cols : np.ndarray, shape (n, 2)
            (row, column) of input pixels, in the convention of page
            coordinates (noteheads, systems).
        iterations : int
            Fixed-point iterations (the warp is small: a few suffice).

        Returns
        -------
        np.ndarray, shape (n, 2)
            (row, column) in the output image.
        """
        p = np.asarray(rows_cols, dtype=np.float64).reshape(-1, 2)
        tx, ty = p[:, 1] + 0.5, p[:, 0] + 0.5
        inv = np.linalg.inv(self.matrix)
        x, y = tx.copy(), ty.copy()
        for _ in range(iterations):
            sx, sy = self.source(x, y)
            x = x + inv[0, 0] * (tx - sx) + inv[0, 1] * (ty - sy)
            y = y + inv[1, 0] * (tx - sx) + inv[1, 1] * (ty - sy)
        return np.stack([y - 0.5, x - 0.5], axis=1)


def draw_warp(shape: tuple[int, int], rng: np.random.Generator, options: ScanOptions) -> Warp:
    """Draw a rotation, scaling and smooth warp within ``options``' ranges.

    Parameters
    ----------
    shape : (int, int)
        Image height and width, pixels.
    rng : numpy.random.Generator
    options : ScanOptions

    Returns
    -------
    Warp
    """
    h, w = shape
    theta = np.deg2rad(rng.uniform(-options.rotation_deg, options.rotation_deg))
    scale = rng.uniform(*options.scale)
    c, s = np.cos(theta), np.sin(theta)
    matrix = np.array([[c, s], [-s, c]]) / scale  # inverse of rotate-then-scale
    cells = options.warp_cells
    nx, ny = (cells, max(1, round(cells * h / w))) if w >= h else (max(1, round(cells * w / h)), cells)
    disp = rng.uniform(-1.0, 1.0, (ny + 1, nx + 1, 2)) * options.warp_px
    return Warp((h, w), matrix, np.linspace(0, w, nx + 1), np.linspace(0, h, ny + 1), disp)


def warp(img: np.ndarray, geometry: Warp, fill: int = 255, bilinear: bool = True) -> np.ndarray:
    """Resample an image through a :class:`Warp` (PIL mesh transform).

    Parameters
    ----------
    img : np.ndarray, shape (H, W), uint8
    geometry : Warp
    fill : int
        Grey level where the map leaves the input (paper).
    bilinear : bool
        Bilinear interpolation; nearest neighbour otherwise (4x faster, the
        pools' own snippet scaling, and a scanner's stair-stepped lines).

    Returns
    -------
    np.ndarray, shape (H, W), uint8
    """
    h, w = img.shape
    resample = Image.Resampling.BILINEAR if bilinear else Image.Resampling.NEAREST
    if not geometry.displacement.any():  # purely affine: one call, twice as fast as a mesh
        cy, cx = h / 2, w / 2
        a = geometry.matrix
        data = (a[0, 0], a[0, 1], cx - a[0, 0] * cx - a[0, 1] * cy,
                a[1, 0], a[1, 1], cy - a[1, 0] * cx - a[1, 1] * cy)
        return np.asarray(Image.fromarray(img).transform((w, h), Image.Transform.AFFINE, data,
                                                         resample=resample, fillcolor=fill))
    vx, vy = geometry.vertices_x, geometry.vertices_y
    gx, gy = np.meshgrid(vx, vy)
    sx, sy = geometry.source(gx, gy)
    mesh = []
    for i in range(len(vy) - 1):
        for j in range(len(vx) - 1):
            box = (int(vx[j]), int(vy[i]), int(vx[j + 1]), int(vy[i + 1]))
            quad = (sx[i, j], sy[i, j], sx[i + 1, j], sy[i + 1, j],
                    sx[i + 1, j + 1], sy[i + 1, j + 1], sx[i, j + 1], sy[i, j + 1])
            mesh.append((box, quad))
    out = Image.fromarray(img).transform((w, h), Image.Transform.MESH, mesh,
                                         resample=resample, fillcolor=fill)
    return np.asarray(out)


# --------------------------------------------------------------------------
# Photometry
# --------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _linear_upsampler(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) matrix of linear interpolation from n_in to n_out samples (ends aligned)."""
    pos = np.linspace(0, n_in - 1, n_out)
    lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
    m = np.zeros((n_out, n_in), dtype=np.float32)
    m[np.arange(n_out), lo] = 1 - (pos - lo)
    m[np.arange(n_out), lo + 1] = pos - lo
    return m


def smooth_field(shape: tuple[int, int], rng: np.random.Generator, cell_px: float = 24.0) -> np.ndarray:
    """Low-frequency noise: white noise on a coarse grid, interpolated bilinearly.

    Parameters
    ----------
    shape : (int, int)
        Height and width, pixels.
    rng : numpy.random.Generator
    cell_px : float
        Correlation length, pixels.

    Returns
    -------
    np.ndarray, shape (H, W), float32
        Unit standard deviation at the grid points, less between them.
    """
    h, w = shape
    gh, gw = max(2, round(h / cell_px) + 1), max(2, round(w / cell_px) + 1)
    small = rng.standard_normal((gh, gw), dtype=np.float32)
    return _linear_upsampler(h, gh) @ small @ _linear_upsampler(w, gw).T


def print_levels(img: np.ndarray, rng: np.random.Generator, options: ScanOptions) -> np.ndarray:
    """Grey ink on off-white paper, both textured, with an optional edge shadow.

    Grey level ``g`` maps linearly from ink (0) to paper (255); paper and ink
    levels vary over the image with one :func:`smooth_field` (the ink's is
    the paper's turned by 180 degrees, another pattern); the shadow darkens
    the paper towards one random edge, decaying over a tenth of the image.

    Parameters
    ----------
    img : np.ndarray, shape (H, W), uint8
    rng : numpy.random.Generator
    options : ScanOptions

    Returns
    -------
    np.ndarray, shape (H, W), uint8
    """
    ink = rng.uniform(*options.ink)
    paper = rng.uniform(*options.paper)
    field = options.texture * smooth_field(img.shape, rng)
    paper_map = paper + field
    if options.shadow > 0:
        h, w = img.shape
        side = int(rng.integers(4))
        length = w if side < 2 else h
        ramp = np.exp(-np.arange(length, dtype=np.float32) / (0.1 * length))
        ramp = ramp if side % 2 == 0 else ramp[::-1]
        fall = rng.uniform(0.5, 1.0) * options.shadow * (ramp[None, :] if side < 2 else ramp[:, None])
        paper_map = paper_map * (1.0 - fall)
    ink_map = ink + field[::-1, ::-1]
    out = paper_map - ink_map  # in place from here: out = ink + g / 255 * (paper - ink)
    out *= img * np.float32(1.0 / 255.0)
    out += ink_map
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def box_radius(sigma: float) -> float:
    """Radius of PIL's (fractional) box blur whose kernel has standard deviation ``sigma`` px.

    PIL's box of radius ``r = n + f`` weighs offsets ``|k| <= n`` by 1 and
    ``|k| = n + 1`` by ``f``, over ``2 r + 1``; its variance is
    ``(n (n + 1) (2 n + 1) / 3 + 2 f (n + 1) ** 2) / (2 r + 1)``.
    """
    var = sigma ** 2
    n = 0
    while True:
        inner = n * (n + 1) * (2 * n + 1) / 3.0
        # solve (inner + 2 f (n+1)^2) = var (2n + 1 + 2f) for f in [0, 1)
        denominator = 2 * (n + 1) ** 2 - 2 * var
        if denominator > 0:
            f = (var * (2 * n + 1) - inner) / denominator
            if 0 <= f < 1:
                return n + f
        n += 1


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Blur of standard deviation ``sigma`` pixels, shape and dtype kept.

    One pass of PIL's box blur with :func:`box_radius` (PIL's Gaussian blur
    is three such passes, 2.5 times slower); for the scanner's sub-pixel to
    one-pixel blurs the kernels differ by a few grey levels.
    """
    return np.asarray(Image.fromarray(img).filter(ImageFilter.BoxBlur(box_radius(sigma))))


def add_noise(img: np.ndarray, rng: np.random.Generator, sd: float, specks: float = 0.0) -> np.ndarray:
    """Gaussian sensor noise and dark dust specks.

    The noise takes 256 equiprobable Gaussian levels (one uint8 draw per
    pixel: cheap); a speck darkens a 1-2 pixel spot to half its grey level.

    Parameters
    ----------
    img : np.ndarray, shape (H, W), uint8
    rng : numpy.random.Generator
    sd : float
        Noise standard deviation, grey levels.
    specks : float
        Specks per 10,000 pixels (Poisson mean).

    Returns
    -------
    np.ndarray, shape (H, W), uint8
    """
    lut = np.round(_GAUSS_LUT * sd).astype(np.int16)
    out = img.astype(np.int16) + lut[rng.integers(0, 256, img.shape, dtype=np.uint8)]
    n = rng.poisson(specks * img.size / 1e4)
    if n:
        r = rng.integers(0, img.shape[0] - 1, n)
        c = rng.integers(0, img.shape[1] - 1, n)
        big = rng.random(n) < 0.3
        out[r, c] //= 2
        out[r[big] + 1, c[big]] //= 2
        out[r[big], c[big] + 1] //= 2
    return np.clip(out, 0, 255).astype(np.uint8)


def binarize(img: np.ndarray, threshold: float) -> np.ndarray:
    """Black (0) below ``threshold``, white (255) from it up; uint8."""
    return np.where(img < threshold, 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """The image after a JPEG round trip at ``quality`` (1-95)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("L"))


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------


def _degrade(img: np.ndarray, rng: np.random.Generator, options: ScanOptions,
             always: bool) -> tuple[np.ndarray, Warp | None]:
    """The chain; each stage runs when its probability passes (or is > 0 with ``always``:
    pages, resampled bilinearly; snippets use nearest neighbour)."""

    def on(p: float) -> bool:
        return p > 0 if always else rng.random() < p

    out, geometry = img, None
    if on(options.p_geometry):
        geometry = draw_warp(img.shape, rng, options)
        out = warp(out, geometry, bilinear=always)
    if rng.random() < options.p_binarize:
        out = binarize(out, rng.uniform(*options.threshold))
    if on(options.p_print):
        out = print_levels(out, rng, options)
    if on(options.p_blur):
        out = blur(out, rng.uniform(*options.blur_sigma))
    if on(options.p_noise):
        out = add_noise(out, rng, rng.uniform(*options.noise_sd), options.specks)
    if on(options.p_jpeg):
        out = jpeg(out, int(rng.integers(options.jpeg_quality[0], options.jpeg_quality[1] + 1)))
    return out, geometry


def degrade_snippet(img: np.ndarray, rng: np.random.Generator,
                    options: ScanOptions = ScanOptions()) -> np.ndarray:
    """Training-time scan augmentation of a sheet snippet.

    Each stage (geometry, binarization, print, blur, noise, JPEG) runs with
    its probability in ``options``; its parameters are drawn from the ranges.

    Parameters
    ----------
    img : np.ndarray, shape (H, W), uint8
        A snippet, white = 255 (e.g. 160 x 200 from ``sheet_snippet``).
    rng : numpy.random.Generator
    options : ScanOptions

    Returns
    -------
    np.ndarray, shape (H, W), uint8
        A new array; ``img`` is not modified.
    """
    if img.dtype != np.uint8 or img.ndim != 2:
        raise ValueError(f"expected a 2-D uint8 image, got {img.dtype} of shape {img.shape}")
    out, _ = _degrade(img, rng, options, always=False)
    return out if out is not img else img.copy()


@dataclass(frozen=True)
class DegradedPage:
    """A degraded page and where its pixels went.

    Attributes
    ----------
    image : np.ndarray, shape (H, W), uint8
    geometry : Warp or None
        The geometric map (None when the level moves nothing);
        :meth:`map_points` moves page coordinates with it.
    """

    image: np.ndarray
    geometry: Warp | None

    def map_points(self, rows_cols: np.ndarray) -> np.ndarray:
        """(row, column) of page pixels in the degraded page, shape (n, 2)."""
        points = np.asarray(rows_cols, dtype=np.float64).reshape(-1, 2)
        return points.copy() if self.geometry is None else self.geometry.map_points(points)


def degrade_page(page: np.ndarray, rng: np.random.Generator, level: str = "scan") -> DegradedPage:
    """A page as it might come out of a scanner, at a named quality level.

    Parameters
    ----------
    page : np.ndarray, shape (H, W), uint8
        A page image, white = 255.
    rng : numpy.random.Generator
    level : str
        A key of :data:`PAGE_LEVELS`: ``clean``, ``scan`` or ``poor scan``.

    Returns
    -------
    DegradedPage
        The image and the geometric map for notehead and system coordinates.

    Raises
    ------
    ValueError
        Unknown level, or not a 2-D uint8 image.
    """
    if level not in PAGE_LEVELS:
        raise ValueError(f"unknown page-quality level {level!r}; choose from {', '.join(PAGE_LEVELS)}")
    if page.dtype != np.uint8 or page.ndim != 2:
        raise ValueError(f"expected a 2-D uint8 image, got {page.dtype} of shape {page.shape}")
    out, geometry = _degrade(page, rng, PAGE_LEVELS[level], always=True)
    return DegradedPage(out if out is not page else page.copy(), geometry)

"""Scan-like degradation of sheet images: each stage does what it says, pages keep their coordinates."""

from __future__ import annotations

import numpy as np
import pytest

from audio_sheet_retrieval.data import page_quality as Q


def _staff_snippet(height: int = 160, width: int = 200) -> np.ndarray:
    """Five 1-px staff lines 7 px apart (grey 140, as verovio's thin lines rasterize at
    835 px page width), a few filled heads and a stem; white = 255."""
    img = np.full((height, width), 255, np.uint8)
    for k in range(5):
        img[60 + 7 * k, 10:190] = 140
    for x, y in ((40, 74), (80, 81), (120, 67), (160, 88)):
        yy, xx = np.mgrid[-3:4, -4:5]
        inside = (yy / 3.2) ** 2 + (xx / 4.2) ** 2 <= 1
        img[y + yy[inside], x + xx[inside]] = 0
        img[y - 24:y, x + 4] = 0
    return img


def test_snippet_keeps_shape_and_input_and_follows_the_seed():
    img = _staff_snippet()
    before = img.copy()
    a = Q.degrade_snippet(img, np.random.default_rng(0))
    b = Q.degrade_snippet(img, np.random.default_rng(0))
    assert a.shape == img.shape and a.dtype == np.uint8
    assert np.array_equal(img, before)
    assert np.array_equal(a, b)
    outs = [Q.degrade_snippet(img, np.random.default_rng(s)) for s in range(1, 20)]
    assert sum(not np.array_equal(o, img) for o in outs) >= 15  # most draws change something
    clean = Q.degrade_snippet(img, np.random.default_rng(0), Q.NO_DEGRADATION)
    assert np.array_equal(clean, img) and clean is not img
    with pytest.raises(ValueError):
        Q.degrade_snippet(img.astype(np.float32), np.random.default_rng(0))


def test_blur_has_the_requested_width():
    img = np.zeros((41, 41), np.uint8)
    img[20, 20] = 255
    for sigma in (0.3, 0.7, 1.0, 1.5):
        profile = Q.blur(img, sigma).astype(float).sum(axis=0)
        x = np.arange(41) - 20
        measured = np.sqrt((profile * x * x).sum() / profile.sum())
        assert abs(measured - sigma) < 0.05, (sigma, measured)


def test_noise_has_the_requested_spread_and_specks_darken():
    flat = np.full((200, 200), 128, np.uint8)
    rng = np.random.default_rng(0)
    for sd in (2.0, 8.0, 15.0):
        out = Q.add_noise(flat, rng, sd).astype(float)
        assert abs(out.std() - sd) < 0.1 * sd + 0.3 and abs(out.mean() - 128) < 0.5
    specked = Q.add_noise(flat, rng, 0.0, specks=20.0)
    assert 40 <= (specked < 128).sum() <= 200  # ~80 specks, some 3 px


def test_print_levels_grey_ink_on_grey_paper():
    img = _staff_snippet()
    opts = Q.ScanOptions(ink=(50, 50), paper=(210, 210), texture=0.0)
    out = Q.print_levels(img, np.random.default_rng(0), opts)
    assert np.all(out[img == 0] == 50) and np.all(out[img == 255] == 210)
    textured = Q.print_levels(img, np.random.default_rng(0), Q.ScanOptions(ink=(50, 50), paper=(210, 210),
                                                                           texture=6.0))
    paper = textured[img == 255].astype(float)
    assert 2.0 < paper.std() < 8.0 and abs(paper.mean() - 210) < 4
    shadowed = Q.print_levels(img, np.random.default_rng(1), Q.ScanOptions(
        ink=(0, 0), paper=(240, 240), texture=0.0, shadow=0.5))
    edges = [shadowed[:, 0].mean(), shadowed[:, -1].mean(), shadowed[0, :].mean(), shadowed[-1, :].mean()]
    assert min(edges) < 200 and max(edges) >= 235  # one edge is in the shadow


def test_binarize_and_jpeg():
    img = Q.blur(_staff_snippet(), 1.0)
    thick = Q.binarize(img, 200)
    thin = Q.binarize(img, 60)
    assert set(np.unique(thick)) <= {0, 255}
    assert (thick == 0).sum() > (img < 128).sum() > (thin == 0).sum()  # strokes thicken / thin
    # a bi-level copy keeps the thin grey staff lines over the whole default range
    staff = _staff_snippet()
    for t in Q.ScanOptions().threshold + Q.PAGE_LEVELS["poor scan"].threshold:
        lines = Q.binarize(staff, t)[60:89:7, 10:190]
        assert np.all(lines == 0), t
    low, high = Q.jpeg(img, 10), Q.jpeg(img, 90)
    err_low = np.abs(low.astype(int) - img).mean()
    err_high = np.abs(high.astype(int) - img).mean()
    assert err_low > err_high > 0


@pytest.mark.parametrize("bilinear", [True, False])
def test_warp_moves_pixels_where_map_points_says(bilinear):
    h, w = 600, 500
    img = np.full((h, w), 255, np.uint8)
    rows, cols = np.meshgrid(np.arange(40, h - 40, 50), np.arange(40, w - 40, 50), indexing="ij")
    points = np.stack([rows.ravel(), cols.ravel()], axis=1)
    for r, c in points:
        img[r - 1:r + 2, c - 1:c + 2] = 0
    opts = Q.ScanOptions(rotation_deg=2.0, scale=(0.9, 1.1), warp_px=4.0, warp_cells=5)
    for seed in range(3):
        geometry = Q.draw_warp(img.shape, np.random.default_rng(seed), opts)
        out = 255.0 - Q.warp(img, geometry, bilinear=bilinear)
        moved = geometry.map_points(points)
        yy, xx = np.mgrid[-6:7, -6:7]
        for mr, mc in moved:
            r0, c0 = int(round(mr)), int(round(mc))
            win = out[r0 - 6:r0 + 7, c0 - 6:c0 + 7]
            found = np.array([r0 + (win * yy).sum() / win.sum(), c0 + (win * xx).sum() / win.sum()])
            assert np.hypot(*(found - (mr, mc))) < (0.35 if bilinear else 0.8)
        # and the map really moved them (rotation, scale, warp)
        assert np.abs(moved - points).max() > 5
        # without displacement the fast affine path agrees with the mesh path
        flat = Q.Warp(geometry.shape, geometry.matrix, geometry.vertices_x, geometry.vertices_y,
                      np.zeros_like(geometry.displacement))
        tiny = Q.Warp(geometry.shape, geometry.matrix, geometry.vertices_x, geometry.vertices_y,
                      np.full_like(geometry.displacement, 1e-9))
        a, b = Q.warp(img, flat, bilinear=bilinear), Q.warp(img, tiny, bilinear=bilinear)
        assert (np.abs(a.astype(int) - b) > 2).mean() < 1e-4


def test_identity_geometry_changes_nothing_and_scale_scales_the_staff():
    img = _staff_snippet()
    still = Q.ScanOptions(rotation_deg=0.0, scale=(1.0, 1.0), warp_px=0.0)
    assert np.array_equal(Q.warp(img, Q.draw_warp(img.shape, np.random.default_rng(0), still)), img)
    for s in (0.8, 1.25):
        g = Q.draw_warp(img.shape, np.random.default_rng(0),
                        Q.ScanOptions(rotation_deg=0.0, scale=(s, s), warp_px=0.0))
        out = Q.warp(img, g)
        ink = 255.0 - out[:, 95:105].mean(axis=1)  # staff lines only in these columns
        rows = np.flatnonzero(ink > 3)
        runs = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
        centres = [(r * ink[r]).sum() / ink[r].sum() for r in runs]
        assert len(centres) == 5 and np.allclose(np.diff(centres), 7 * s, atol=0.3)


def test_page_levels():
    page = np.full((1181, 835), 255, np.uint8)
    for k in range(8):
        page[100 + 120 * k: 100 + 120 * k + 29:7, 60:780] = 0
    pts = np.array([[100.0, 60.0], [940.0, 780.0], [500.0, 400.0]])
    clean = Q.degrade_page(page, np.random.default_rng(0), "clean")
    assert np.array_equal(clean.image, page) and np.array_equal(clean.map_points(pts), pts)
    scan = Q.degrade_page(page, np.random.default_rng(0), "scan")
    poor = Q.degrade_page(page, np.random.default_rng(0), "poor scan")
    for d in (scan, poor):
        assert d.image.shape == page.shape and d.image.dtype == np.uint8
        assert not np.array_equal(d.image, page)
    # poor scans have darker paper and less contrast than careful ones
    assert np.median(poor.image) < np.median(scan.image) <= 250
    assert np.abs(poor.map_points(pts) - pts).max() > 0.5  # the page moved, and the map says how
    with pytest.raises(ValueError, match="unknown page-quality level"):
        Q.degrade_page(page, np.random.default_rng(0), "photocopy")


def test_options_are_checked():
    for bad in ({"ink": (200, 250)}, {"scale": (1.1, 0.9)}, {"jpeg_quality": (0, 50)},
                {"shadow": 1.0}, {"warp_cells": 0}):
        with pytest.raises(ValueError):
            Q.ScanOptions(**bad)

"""Staff and system detection on pages we did not build, checked against engraver truth.

Verovio gives exact system boxes (its staff lines' rows and extent); LilyPond
pages are checked against the systems its engraver reports and against its
notehead link rectangles. "Scans" are engraved pages rotated, blurred and
noised the way a scanner degrades a page.
"""

from __future__ import annotations

import shutil

import numpy as np
import pymupdf
import pytest
from PIL import Image
from scipy import ndimage

from audio_sheet_retrieval.build.engrave_verovio import engrave
from audio_sheet_retrieval.build.sources import load_musicxml, resolve
from audio_sheet_retrieval.data.unroll import STRIP_HEIGHT
from audio_sheet_retrieval.errors import AsrError
from audio_sheet_retrieval.sheet.pages import load_pages
from audio_sheet_retrieval.sheet.staff_detection import (
    deskew,
    detect_staves,
    detect_systems,
    estimate_skew,
    staff_space_and_line_height,
    unroll_page_images,
)

ROW_TOL_PX = 3.0
COL_TOL_PX = 15.0


@pytest.fixture(scope="module")
def verovio_scores() -> dict:
    """Verovio engravings (pages and exact systems) of two test pieces."""
    return {name: engrave(load_musicxml(resolve([name])[0]))
            for name in ("bach/bwv846", "bach/bwv259")}


@pytest.fixture(scope="module")
def lilypond_score():
    """LilyPond engraving of bwv846 (grand staves; the first system is indented)."""
    if shutil.which("lilypond") is None or shutil.which("musicxml2ly") is None:
        pytest.skip("LilyPond is not installed")
    from audio_sheet_retrieval.build.engrave_lilypond import engrave as engrave_lilypond

    return engrave_lilypond(load_musicxml(resolve(["bach/bwv846"])[0]))


def _scan_like(page: np.ndarray, angle: float, seed: int) -> np.ndarray:
    """``page`` rotated by ``angle`` degrees, blurred (1 px), noised (20 grey levels), peppered."""
    rng = np.random.default_rng(seed)
    img = ndimage.rotate(page.astype(np.float32), angle, reshape=False, order=1,
                         mode="constant", cval=255.0)
    img = ndimage.gaussian_filter(img, 1.0) + rng.normal(0.0, 20.0, img.shape)
    speckle = rng.random(img.shape)
    img[speckle < 0.0025] = 0.0
    img[speckle > 0.9975] = 255.0
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _rotated_point(row: float, col: float, shape, angle: float) -> tuple[float, float]:
    """Where ``scipy.ndimage.rotate(page, angle, reshape=False)`` moves pixel (row, col)."""
    cy, cx = (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0
    dy, dx = row - cy, col - cx
    a = np.radians(angle)
    return cy + dy * np.cos(a) - dx * np.sin(a), cx + dx * np.cos(a) + dy * np.sin(a)


def test_rotation_helper_matches_scipy():
    dot = np.zeros((301, 200))
    dot[40:43, 150:153] = 1.0
    moved = ndimage.rotate(dot, 1.5, reshape=False, order=1)
    assert np.allclose(ndimage.center_of_mass(moved), _rotated_point(41, 151, dot.shape, 1.5),
                       atol=0.05)


def _truth(systems, page: int):
    return [s for s in systems if s.page == page]


def _rotated_truth(system, shape, angle: float) -> tuple[float, float, float, float]:
    """Truth box (top, left, bottom, right) of a system after rotating its page by ``angle``.

    Like the detector's boxes: the straight box's centre rotated, its size kept.
    """
    top, bottom = system.staff_lines[0], system.staff_lines[-1]
    row, col = _rotated_point((top + bottom) / 2.0, (system.left + system.right) / 2.0,
                            shape, angle)
    half_h, half_w = (bottom - top) / 2.0, (system.right - system.left) / 2.0
    return row - half_h, col - half_w, row + half_h, col + half_w


def _assert_boxes(boxes, truth, shape, angle: float = 0.0) -> None:
    assert len(boxes) == len(truth), [(round(b.top), round(b.bottom)) for b in boxes]
    for box, system in zip(boxes, truth):
        top, left, bottom, right = _rotated_truth(system, shape, angle)
        assert abs(box.top - top) <= ROW_TOL_PX, (box, top)
        assert abs(box.bottom - bottom) <= ROW_TOL_PX, (box, bottom)
        assert abs(box.left - left) <= COL_TOL_PX, (box, left)
        assert abs(box.right - right) <= COL_TOL_PX, (box, right)


# --------------------------------------------------------------------------
# Clean verovio pages: exact truth
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bach/bwv846", "bach/bwv259"])
def test_systems_on_verovio_pages(verovio_scores, name):
    score = verovio_scores[name]
    for index, page in enumerate(score.pages):
        boxes = detect_systems(page, page_index=index)
        assert all(b.page == index for b in boxes)
        _assert_boxes(boxes, _truth(score.systems, index), page.shape)


def test_staves_space_and_skew_on_a_clean_page(verovio_scores):
    score = verovio_scores["bach/bwv846"]
    page, truth = score.pages[0], _truth(score.systems, 0)
    assert abs(estimate_skew(page)) < 0.05
    staves = detect_staves(page)
    lines = np.array([s.lines for s in staves]).ravel()
    expected = np.array([s.staff_lines for s in truth]).ravel()
    assert lines.shape == expected.shape
    assert np.abs(lines - expected).max() <= 1.5
    distance = float(np.mean(np.diff(truth[0].staff_lines[:5])))
    space, height = staff_space_and_line_height(page)
    assert 0.5 <= height <= 2.5
    assert abs(space + height - distance) <= 0.5


# --------------------------------------------------------------------------
# Scan-like pages
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name,angle", [("bach/bwv846", 1.0), ("bach/bwv846", -1.5),
                                        ("bach/bwv259", 1.0), ("bach/bwv259", -1.5)])
def test_scan_like_verovio_page(verovio_scores, name, angle):
    score = verovio_scores[name]
    truth = _truth(score.systems, 0)
    scan = _scan_like(score.pages[0], angle, seed=int(100 + 10 * angle) + len(name))
    skew = estimate_skew(scan)
    assert abs(skew - angle) <= 0.2
    _assert_boxes(detect_systems(scan, skew=skew), truth, scan.shape, angle)

    unrolled, boxes = unroll_page_images([scan])
    assert len(unrolled.systems) == len(boxes) == len(truth)
    assert unrolled.strip.shape[0] == STRIP_HEIGHT
    widths = [int(round(b.right)) - int(round(b.left)) for b in unrolled.systems]
    assert unrolled.strip.shape[1] == sum(widths)
    _assert_boxes(boxes, truth, scan.shape, angle)
    # each band is centred on its system: its middle row falls between the two staves
    for box, system in zip(unrolled.systems, truth):
        row, col = _rotated_point(box.center_row, (box.left + box.right) / 2.0, scan.shape, skew)
        gap_top, _, gap_bottom, _ = _rotated_truth(system, scan.shape, angle)
        upper_bottom = gap_top + (system.staff_lines[4] - system.staff_lines[0])
        lower_top = gap_bottom - (system.staff_lines[-1] - system.staff_lines[5])
        assert upper_bottom < row < lower_top


def test_unroll_two_pages_in_reading_order(verovio_scores):
    score = verovio_scores["bach/bwv846"]
    unrolled, boxes = unroll_page_images(score.pages)
    assert len(unrolled.systems) == len(score.systems) == 11
    assert [(b.page, round(b.top)) for b in unrolled.systems] == sorted(
        (b.page, round(b.top)) for b in unrolled.systems)
    assert np.all(np.diff(unrolled.x_offsets) > 0)
    for box, system in zip(boxes, score.systems):
        assert box.page == system.page
        assert abs(box.top - system.staff_lines[0]) <= ROW_TOL_PX


# --------------------------------------------------------------------------
# LilyPond pages
# --------------------------------------------------------------------------


def _nearest_box(boxes, row: float) -> tuple[int, float]:
    """Index of the box nearest to ``row`` and the distance to it (0 inside), in pixels."""
    distances = [max(b.top - row, row - b.bottom, 0.0) for b in boxes]
    k = int(np.argmin(distances))
    return k, distances[k]


def test_systems_on_lilypond_pages(lilypond_score):
    score = lilypond_score
    assert [len(_truth(score.systems, p)) for p in range(len(score.pages))] == [5, 6]
    for index, page in enumerate(score.pages):
        boxes = detect_systems(page, page_index=index)
        _assert_boxes(boxes, _truth(score.systems, index), page.shape)
        # independent of any image analysis: every detected system holds notehead links
        # of the PDF, and no head lies beyond the ledger lines (10 spaces) of all of them
        space = float(np.mean(np.diff(score.systems[0].staff_lines[:5])))
        nearest = [_nearest_box(boxes, h.center[0]) for h in score.noteheads if h.page == index]
        assert {k for k, _ in nearest} == set(range(len(boxes)))
        assert max(d for _, d in nearest) < 10 * space


def test_scan_like_lilypond_page_unrolls(lilypond_score):
    score = lilypond_score
    truth = _truth(score.systems, 0)
    scan = _scan_like(score.pages[0], 1.0, seed=3)
    unrolled, boxes = unroll_page_images([scan])
    assert len(unrolled.systems) == len(truth) == 5
    _assert_boxes(boxes, truth, scan.shape, 1.0)
    skew = estimate_skew(scan)
    for box, system in zip(unrolled.systems, truth):
        row, _ = _rotated_point(box.center_row, (box.left + box.right) / 2.0, scan.shape, skew)
        center_row, _ = _rotated_point((system.staff_lines[4] + system.staff_lines[5]) / 2.0,
                                     (system.left + system.right) / 2.0, scan.shape, 1.0)
        half_gap = (system.staff_lines[5] - system.staff_lines[4]) / 2.0
        assert abs(row - center_row) < half_gap


# --------------------------------------------------------------------------
# Loading pages
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page_files(verovio_scores, tmp_path_factory):
    """A bwv259 page as PNG (twice the size), JPEG, RGBA PNG and a two-page PDF."""
    folder = tmp_path_factory.mktemp("pages")
    page = verovio_scores["bach/bwv259"].pages[0]
    big = Image.fromarray(page).resize((2 * page.shape[1], 2 * page.shape[0]),
                                       Image.Resampling.LANCZOS)
    big.save(folder / "page.png")
    big.convert("RGB").save(folder / "page.jpg", quality=85)
    rgba = np.zeros((*np.asarray(big).shape, 4), dtype=np.uint8)
    rgba[..., 3] = 255 - np.asarray(big)  # black ink on a transparent background
    Image.fromarray(rgba, "RGBA").save(folder / "page_rgba.png")
    doc = pymupdf.open()
    for _ in range(2):
        pdf_page = doc.new_page(width=595, height=842)
        pdf_page.insert_image(pdf_page.rect, filename=str(folder / "page.png"))
    doc.save(folder / "two.pdf")
    doc.close()
    return folder, page


@pytest.mark.parametrize("name", ["page.png", "page.jpg", "page_rgba.png"])
def test_load_image_pages(page_files, name):
    folder, page = page_files
    pages = load_pages(folder / name)
    assert len(pages) == 1
    assert pages[0].dtype == np.uint8 and pages[0].shape == page.shape
    assert np.abs(pages[0].astype(int) - page).mean() < 4.0  # same page, white background
    assert len(detect_systems(pages[0])) == 3


def test_load_pdf_pages_and_unroll(page_files):
    folder, _ = page_files
    pages = load_pages(folder / "two.pdf")
    assert len(pages) == 2
    assert all(p.dtype == np.uint8 and p.shape[1] == 835 for p in pages)
    unrolled, boxes = unroll_page_images(pages)
    assert [b.page for b in boxes] == [0, 0, 0, 1, 1, 1]


def test_bad_page_files(tmp_path):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image")
    no_pages = tmp_path / "empty.pdf"
    no_pages.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
                         b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
                         b"trailer << /Root 1 0 R >>\n%%EOF\n")
    for path in (tmp_path / "missing.png", not_an_image, no_pages):
        with pytest.raises(AsrError) as err:
            load_pages(path)
        message = str(err.value)
        assert "\n" not in message and str(path) in message and "; " in message


def test_deskew_keeps_shape_and_white_fill(verovio_scores):
    page = verovio_scores["bach/bwv259"].pages[0]
    out = deskew(page, 2.0)
    assert out.shape == page.shape and out.dtype == np.uint8
    assert out[0, 0] == 255 and out[-1, -1] == 255

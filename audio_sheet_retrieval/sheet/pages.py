"""Reading a user's score pages: PNG/JPEG images or the pages of a PDF.

Every page comes back as a grayscale uint8 image (white = 255) of a fixed
width (MSMD's 835 pixels), keeping its aspect ratio, ready for
:func:`audio_sheet_retrieval.sheet.staff_detection.unroll_page_images`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pymupdf
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from audio_sheet_retrieval.build.engraving import PAGE_WIDTH_PX
from audio_sheet_retrieval.errors import AsrError

_FIX = "give a score page as a PNG or JPEG image, or a PDF"

MAX_ASPECT = 4.0
"""Largest ratio of a page's long side to its short side (A4 is 1.41); longer is not a page."""

MAX_PAGE_PIXELS = 50_000_000
"""Most pixels of one image decoded (an A4 page scanned at 600 dpi has 35 million)."""

MAX_PAGES = 500
"""Most pages read from one file."""


def _check_size(path: Path, width: float, height: float, what: str = "the image",
                unit: str = "pixels") -> None:
    """Refuse a page whose size or shape is not a page's, before any pixel is decoded."""
    if width <= 0 or height <= 0:
        raise AsrError(f"{path}: {what} is empty; {_FIX}")
    aspect = max(width, height) / min(width, height)
    if aspect > MAX_ASPECT:
        raise AsrError(f"{path}: {what} is {width:g} x {height:g} {unit}, not a score page (sides "
                       f"1:{aspect:.0f}, a page is at most 1:{MAX_ASPECT:g}); crop it to one page")
    if unit == "pixels" and width * height > MAX_PAGE_PIXELS:
        raise AsrError(f"{path}: {what} has {width * height / 1e6:.0f} million pixels (at most "
                       f"{MAX_PAGE_PIXELS / 1e6:.0f}); scale it down to 300 dpi")


def _to_gray(img: Image.Image) -> np.ndarray:
    """Grayscale uint8 array of an image in any mode; transparency lies on white."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return np.clip(np.round(arr * 255.0 / top), 0, 255).astype(np.uint8)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    elif img.mode == "1" or img.mode == "L":
        return np.asarray(img.convert("L"), dtype=np.uint8)
    elif img.mode == "CMYK":
        img = img.convert("RGB")
    return np.asarray(img.convert("L"), dtype=np.uint8)


def _resize(gray: np.ndarray, width_px: int) -> np.ndarray:
    """``gray`` resized to ``width_px`` columns, keeping the aspect ratio (Lanczos)."""
    h, w = gray.shape
    if w == width_px:
        return np.array(gray, dtype=np.uint8, order="C")
    height = max(1, int(round(h * width_px / w)))
    img = Image.fromarray(gray).resize((width_px, height), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8).copy()


def _load_image(path: Path, width_px: int) -> list[np.ndarray]:
    """Every frame of an image, each checked by its header's size before it is decoded."""
    pages = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)  # reads the header only
        with img:
            for index, frame in enumerate(ImageSequence.Iterator(img)):
                if index == MAX_PAGES:
                    raise AsrError(f"{path}: more than {MAX_PAGES} pages; split the file")
                _check_size(path, *frame.size, what="the image" if index == 0
                            else f"frame {index + 1} of the image")
                pages.append(_resize(_to_gray(ImageOps.exif_transpose(frame.copy())), width_px))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise AsrError(f"{path}: the image has more than {MAX_PAGE_PIXELS / 1e6:.0f} million "
                       "pixels; scale it down to 300 dpi") from None
    except UnidentifiedImageError as err:
        raise AsrError(f"{path}: not a readable image (PNG, JPEG) or PDF ({type(err).__name__}); "
                       f"{_FIX}") from None
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise AsrError(f"{path}: cannot read the image ({detail}); re-export it, or "
                       f"{_FIX}") from None
    return pages


def _render_pdf(path: Path, width_px: int) -> list[np.ndarray]:
    try:
        doc = pymupdf.open(path, filetype="pdf")
    except Exception as err:  # pymupdf raises FileDataError, RuntimeError, ...
        raise AsrError(f"{path}: cannot open the PDF ({type(err).__name__}); re-export it, "
                       f"or {_FIX}") from None
    pages = []
    with doc:
        if doc.page_count == 0:
            raise AsrError(f"{path}: the PDF has no pages; give a PDF with at least one "
                           "score page")
        if doc.page_count > MAX_PAGES:
            raise AsrError(f"{path}: {doc.page_count} pages, more than {MAX_PAGES}; split the PDF")
        for page in doc:
            if page.rect.width <= 0 or page.rect.height <= 0:
                raise AsrError(f"{path}: page {page.number + 1} of the PDF is empty; "
                               "remove it or export the score again")
            _check_size(path, round(page.rect.width, 1), round(page.rect.height, 1),
                        what=f"page {page.number + 1} of the PDF", unit="points")
            scale = width_px / page.rect.width
            pix = page.get_pixmap(matrix=pymupdf.Matrix(scale, scale),
                                  colorspace=pymupdf.csGRAY, alpha=False)
            img = np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.stride)
            img = img[:, :pix.width]
            if abs(img.shape[1] - width_px) <= 2:  # rounding of the pixmap size
                pad = max(width_px - img.shape[1], 0)
                img = np.pad(img, ((0, 0), (0, pad)), constant_values=255)[:, :width_px]
            pages.append(_resize(np.ascontiguousarray(img), width_px))
    return pages


def load_pages(path: str | Path, width_px: int = PAGE_WIDTH_PX) -> list[np.ndarray]:
    """Read score pages from an image or a PDF.

    Parameters
    ----------
    path : str or Path
        A PNG or JPEG image (any mode: colour, palette, 16-bit, with
        transparency laid on white; EXIF rotation applied; every frame of a
        multi-page TIFF), or a PDF, of which every page is rendered.
    width_px : int
        Width of the returned pages, in pixels (835: MSMD's page width).
        PDF pages are rendered at that width; images are resized to it with
        a Lanczos filter. The aspect ratio is kept.

    Returns
    -------
    list of np.ndarray, shape (height, width_px), uint8
        Grayscale pages, white = 255, in document order.

    Raises
    ------
    AsrError
        One line naming the file and the fix, if the file is missing, is
        not an image or PDF, is corrupt, is a PDF without pages, has more
        than ``MAX_PAGES`` pages, or has a page more than ``MAX_ASPECT`` times
        longer than wide (or wider than long) or of more than
        ``MAX_PAGE_PIXELS`` pixels. Sizes are checked before the pixels are
        decoded, so the work stays bounded whatever the file claims.
    """
    path = Path(path)
    if not isinstance(width_px, int | np.integer) or width_px < 8:
        raise AsrError(f"page width {width_px!r} is not a whole number of pixels >= 8; "
                       f"pass e.g. width_px={PAGE_WIDTH_PX}")
    if not path.exists():
        raise AsrError(f"{path}: no such file; check the path, or {_FIX}")
    if not path.is_file():
        raise AsrError(f"{path}: not a file; {_FIX}")
    try:
        with path.open("rb") as f:
            head = f.read(1024)
    except OSError as err:
        raise AsrError(f"{path}: cannot read it ({err.strerror or err}); check its "
                       "permissions") from None
    if not head:
        raise AsrError(f"{path}: the file is empty; {_FIX}")
    if b"%PDF" in head or path.suffix.lower() == ".pdf":
        return _render_pdf(path, int(width_px))
    return _load_image(path, int(width_px))

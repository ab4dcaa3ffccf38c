"""Readers for the MSMD layout: pieces, scores (pages + MuNG), performances.

The same readers serve the real MSMD download and what ``build_dataset.py``
writes. Every reader checks its file and raises :class:`AsrError` naming the
file and the fix when it is missing or corrupt. A piece that an older (or
newer) ``build_dataset.py`` wrote is refused rather than mixed with the
others: its features are computed differently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image, UnidentifiedImageError

from audio_sheet_retrieval.data.layout import (
    DATA_FORMAT_VERSION,
    FORMAT_KEY,
    feature_path,
    is_other_format,
    parse_performance_name,
    read_meta,
)
from audio_sheet_retrieval.data.mung import CropObject, read_mung
from audio_sheet_retrieval.data.splits import load_split  # noqa: F401  (its former home)
from audio_sheet_retrieval.errors import AsrError

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FIX = "rebuild it with build_dataset.py --pieces <name> --force, or re-download MSMD"


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise AsrError(f"{path}: {what} missing; {_FIX}")
    return path


def load_npy(path: Path, what: str = "array", mmap: bool = False) -> np.ndarray:
    """``np.load`` with a one-line error for a missing or corrupt file."""
    _require(path, what)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as err:  # numpy raises ValueError/OSError/EOFError on corrupt files
        raise AsrError(f"{path}: corrupt {what} ({type(err).__name__}); {_FIX}") from None


def load_image(path: Path) -> np.ndarray:
    """A page image as grayscale uint8 (white = 255)."""
    _require(path, "page image")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise AsrError(f"{path}: corrupt page image ({type(err).__name__}); {_FIX}") from None


class Score:
    """One engraving of a piece: page images and their MuNG objects."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.name = self.folder.name
        self.img_dir = self.folder / "img"
        self.mung_dir = self.folder / "mung"

    @property
    def page_files(self) -> list[Path]:
        """Page images, in page order."""
        pages = sorted(_require(self.img_dir, "score image folder").glob("*.png"))
        if not pages:
            raise AsrError(f"{self.img_dir}: no page images; {_FIX}")
        return pages

    def load_images(self) -> list[np.ndarray]:
        """Grayscale uint8 page images."""
        return [load_image(p) for p in self.page_files]

    def load_mungos(self) -> list[list[CropObject]]:
        """MuNG objects of each page (same order as the images)."""
        out = []
        for page in self.page_files:
            path = _require(self.mung_dir / f"{page.stem}.xml", "MuNG file")
            try:
                out.append(read_mung(path))
            except Exception as err:  # ElementTree.ParseError, ValueError
                raise AsrError(f"{path}: corrupt MuNG XML ({str(err).splitlines()[0]}); {_FIX}") from None
        return out


class Performance:
    """One rendering of a piece: audio, spectrogram, note events."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.name = self.folder.name
        self.piece, self.tempo, self.synth = parse_performance_name(self.name)

    @property
    def audio_path(self) -> Path:
        """The FLAC (or WAV) recording."""
        for suffix in (".flac", ".wav"):
            if (self.folder / f"{self.name}{suffix}").is_file():
                return self.folder / f"{self.name}{suffix}"
        raise AsrError(f"{self.folder}: no {self.name}.flac; {_FIX} (keep audio)")

    def load_spectrogram(self, mmap: bool = False, n_bins: int | None = None) -> np.ndarray:
        """(bins, frames) float log spectrogram, checked: >= 1 frame, finite values."""
        path = feature_path(self.folder, "spec")
        spec = load_npy(path, "spectrogram", mmap=mmap)
        if (spec.ndim != 2 or (n_bins is not None and spec.shape[0] != n_bins) or spec.shape[1] < 1
                or not np.issubdtype(spec.dtype, np.floating)):
            raise AsrError(f"{path}: spectrogram of shape {spec.shape} ({spec.dtype}), expected "
                           f"({n_bins or 'bins'}, frames) float; {_FIX}")
        if not np.isfinite(spec).all():
            raise AsrError(f"{path}: spectrogram holds NaN or infinite values; {_FIX}")
        return spec

    def load_note_events(self) -> np.ndarray:
        """(N, 5) note events: onset (s), pitch, duration (s), track, channel; finite."""
        path = feature_path(self.folder, "notes")
        notes = load_npy(path, "note events")
        if notes.ndim != 2 or notes.shape[1] < 3 or not np.issubdtype(notes.dtype, np.number):
            raise AsrError(f"{path}: note events of shape {notes.shape}, expected (N, 5); {_FIX}")
        if not np.isfinite(notes).all():
            raise AsrError(f"{path}: note events hold NaN or infinite values; {_FIX}")
        return notes

    def load_onsets(self) -> np.ndarray:
        """(N,) onset frame of each note event: whole numbers >= 0, as int64."""
        path = feature_path(self.folder, "onsets")
        onsets = load_npy(path, "onset frames")
        if (onsets.ndim != 1 or not np.issubdtype(onsets.dtype, np.number)
                or not np.all(np.isfinite(onsets)) or np.any(onsets < 0)
                or np.any(onsets != np.round(onsets))):
            raise AsrError(f"{path}: onset frames must be (N,) whole numbers >= 0, got shape "
                           f"{onsets.shape} ({onsets.dtype}); {_FIX}")
        return onsets.astype(np.int64)


class Piece:
    """A piece folder of an MSMD-layout data root."""

    def __init__(self, root: str | Path, name: str):
        self.root = Path(root)
        self.name = name
        self.folder = self.root / name
        if not self.folder.is_dir():
            raise AsrError(f"{self.folder}: piece not found in the data root; build it with "
                           f"build_dataset.py --pieces ... or fix the split file")
        self.check_format()

    def check_format(self) -> None:
        """Refuse a piece that ``build_dataset.py`` wrote in another data format.

        A piece of the real MSMD download has no format key and no builder
        marker in its ``meta.yml`` and is accepted.

        Raises
        ------
        AsrError
            When the piece's data format is not :data:`DATA_FORMAT_VERSION`.
        """
        meta = read_meta(self.folder)  # None: not provably ours; .meta will say what is wrong
        if meta is not None and is_other_format(meta):
            version = meta.get(FORMAT_KEY, 1)
            raise AsrError(f"{self.folder}: built in data format {version}, this version reads "
                           f"{DATA_FORMAT_VERSION}; rebuild it with build_dataset.py --root {self.root} "
                           "(it rebuilds pieces of another format)")

    @property
    def available_scores(self) -> list[str]:
        folder = self.folder / "scores"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    @property
    def available_performances(self) -> list[str]:
        folder = self.folder / "performances"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    @property
    def meta(self) -> dict:
        path = self.folder / "meta.yml"
        if not path.is_file():
            return {}
        try:
            meta = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER) or {}
        except (yaml.YAMLError, UnicodeDecodeError):
            raise AsrError(f"{path}: corrupt meta.yml; {_FIX}") from None
        if not isinstance(meta, dict):
            raise AsrError(f"{path}: corrupt meta.yml (not a mapping); {_FIX}")
        return meta

    def load_score(self, name: str | None = None) -> Score:
        """A score by name (default: the only or first one)."""
        scores = self.available_scores
        if not scores:
            raise AsrError(f"{self.folder / 'scores'}: the piece has no score; {_FIX}")
        name = name or scores[0]
        if name not in scores:
            raise AsrError(f"{self.folder / 'scores' / name}: no such score; have {', '.join(scores)}")
        return Score(self.folder / "scores" / name)

    def load_performance(self, name: str, require_audio: bool = False) -> Performance:
        """A performance by name."""
        folder = self.folder / "performances" / name
        if not folder.is_dir():
            raise AsrError(f"{folder}: no such performance; build it with --synths/--tempi "
                           "that include it, or pick another synth/tempo")
        perf = Performance(folder)
        if require_audio:
            _ = perf.audio_path
        return perf

    def load_alignment(self, performance: str) -> list[tuple[int, int, int]]:
        """(page index, notehead object id, note event index) of a performance, all pages.

        Object ids restart on every page: ``(page, id)`` identifies a notehead.
        """
        key = f"{performance}_note_event_idx"
        return [(page, o.objid, int(o.data[key]))
                for page, objs in enumerate(self.load_score().load_mungos())
                for o in objs if key in o.data]


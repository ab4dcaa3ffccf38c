"""Snippet pools: (sheet snippet, spectrogram excerpt) pairs for training and testing.

An *entity* is one aligned onset of one performance: (piece, performance,
onset frame, strip x). Training pools sample entities with the original's
augmentation (vertical system translation, sheet scaling, onset jitter; the
choice among synths and tempi is the choice among pre-rendered
performances); test pools are fixed and ordered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audio_sheet_retrieval.data.prepare import PreparedPiece
from audio_sheet_retrieval.errors import AsrError


@dataclass(frozen=True)
class Augmentation:
    """Augmentation parameters (all off by default).

    Attributes
    ----------
    system_translation : int
        Largest vertical shift of the snippet, pixels.
    sheet_scaling : (float, float)
        Range of the sheet scale factor (nearest-neighbour).
    onset_translation : int
        Largest shift of the excerpt centre, frames.
    """

    system_translation: int = 0
    sheet_scaling: tuple[float, float] = (1.0, 1.0)
    onset_translation: int = 0

    @classmethod
    def from_config(cls, augment: dict) -> Augmentation:
        lo, hi = augment["sheet_scaling"]
        return cls(int(augment["system_translation"]), (float(lo), float(hi)),
                   int(augment["onset_translation"]))

    @property
    def active(self) -> bool:
        return bool(self.system_translation or self.onset_translation
                    or self.sheet_scaling != (1.0, 1.0))


def sheet_snippet(strip: np.ndarray, x: float, height: int = 160, width: int = 200,
                  scale: float = 1.0, shift_y: int = 0) -> np.ndarray:
    """A ``height`` x ``width`` window of the strip centred on column ``x``.

    The window is centred vertically on the strip's middle row plus ``shift_y``
    and shows the strip scaled by ``scale`` (nearest neighbour); pixels beyond
    the strip are white.

    Parameters
    ----------
    strip : np.ndarray, shape (H, W), uint8
    x : float
        Centre column, strip pixels.
    height, width : int
        Snippet size, pixels.
    scale : float
        Zoom factor (> 1 enlarges the music).
    shift_y : int
        Vertical shift of the window, pixels.

    Returns
    -------
    np.ndarray, shape (height, width), uint8
    """
    cy = strip.shape[0] // 2 + shift_y
    rows = np.floor(cy + (np.arange(height) + 0.5 - height / 2) / scale).astype(np.int64)
    cols = np.floor(x + (np.arange(width) + 0.5 - width / 2) / scale).astype(np.int64)
    out = np.full((height, width), 255, dtype=np.uint8)
    rv = (rows >= 0) & (rows < strip.shape[0])
    cv = (cols >= 0) & (cols < strip.shape[1])
    out[np.ix_(rv, cv)] = strip[np.ix_(rows[rv], cols[cv])]
    return out


def spec_excerpt(spec: np.ndarray, frame: int, context: int) -> np.ndarray:
    """``context`` frames of ``spec`` centred on ``frame`` (zeros beyond its ends).

    Frames ``[frame - context // 2, frame - context // 2 + context)``; zero is
    silence in the ``log10(1 + x)`` spectrogram.

    Returns
    -------
    np.ndarray, shape (bins, context), float32
    """
    start = frame - context // 2
    out = np.zeros((spec.shape[0], context), dtype=np.float32)
    lo, hi = max(start, 0), min(start + context, spec.shape[1])
    if hi > lo:
        out[:, lo - start:hi - start] = spec[:, lo:hi]
    return out


class SnippetPool:
    """Entities of several pieces and the pairs they give.

    Parameters
    ----------
    pieces : list of PreparedPiece
    staff_height, sheet_context : int
        Sheet snippet size, pixels (160 x 200).
    spec_context : int
        Excerpt length, frames.
    augmentation : Augmentation
        Applied by :meth:`pairs` when ``augment=True``.
    """

    def __init__(self, pieces: list[PreparedPiece], staff_height: int = 160,
                 sheet_context: int = 200, spec_context: int = 42,
                 augmentation: Augmentation = Augmentation()):
        self.pieces = pieces
        self.staff_height, self.sheet_context = staff_height, sheet_context
        self.spec_context = spec_context
        self.augmentation = augmentation
        self.perfs = [(i, perf) for i, piece in enumerate(pieces) for perf in piece.performances]
        ent = [(k, j) for k, (_, perf) in enumerate(self.perfs) for j in range(len(perf.frames))]
        ent = np.asarray(ent, dtype=np.int64).reshape(-1, 2)
        self.entity_perf = ent[:, 0]
        self.entity_piece = np.array([self.perfs[k][0] for k in ent[:, 0]], dtype=np.int64)
        self.entity_frame = np.array([self.perfs[k][1].frames[j] for k, j in ent], dtype=np.int64)
        self.entity_x = np.array([self.perfs[k][1].xs[j] for k, j in ent], dtype=np.float32)

    def __len__(self) -> int:
        return len(self.entity_perf)

    @property
    def piece_names(self) -> list[str]:
        return [p.name for p in self.pieces]

    def pairs(self, indices: np.ndarray, augment: bool = False,
              rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The (sheet, excerpt) pairs of entities ``indices``.

        Returns
        -------
        sheets : np.ndarray, shape (B, staff_height, sheet_context), uint8
        specs : np.ndarray, shape (B, bins, spec_context), float32
        """
        aug = self.augmentation if augment else Augmentation()
        rng = rng if rng is not None else np.random.default_rng()
        n = len(indices)
        sheets = np.empty((n, self.staff_height, self.sheet_context), dtype=np.uint8)
        n_bins = self.perfs[0][1].spec.shape[0] if self.perfs else 0
        specs = np.empty((n, n_bins, self.spec_context), dtype=np.float32)
        scales = rng.uniform(*aug.sheet_scaling, n) if aug.sheet_scaling != (1.0, 1.0) else np.ones(n)
        dys = rng.integers(-aug.system_translation, aug.system_translation + 1, n)
        dfs = rng.integers(-aug.onset_translation, aug.onset_translation + 1, n)
        for b, e in enumerate(indices):
            piece_idx, perf = self.perfs[self.entity_perf[e]]
            sheets[b] = sheet_snippet(self.pieces[piece_idx].strip, float(self.entity_x[e]),
                                      self.staff_height, self.sheet_context, float(scales[b]),
                                      int(dys[b]))
            specs[b] = spec_excerpt(perf.spec, int(self.entity_frame[e] + dfs[b]), self.spec_context)
        return sheets, specs

    def describe(self, limit: int = 3) -> str:
        """A short account of the pool for messages: pairs, pieces, performances."""
        counts = np.bincount(self.entity_piece, minlength=len(self.pieces))
        names = ", ".join(f"{p.name} ({c})" for p, c in list(zip(self.pieces, counts))[:limit])
        more = f" and {len(self.pieces) - limit} more" if len(self.pieces) > limit else ""
        return (f"{len(self)} pair(s) from {len(self.pieces)} piece(s) and {len(self.perfs)} "
                f"performance(s): {names or 'none'}{more}")

    def require(self, minimum: int, kind: str, purpose: str) -> None:
        """Refuse a pool with fewer than ``minimum`` distinct pairs.

        Parameters
        ----------
        minimum : int
            Pairs needed.
        kind : str
            ``"train"``, ``"valid"`` or ``"test"`` (the split list to extend).
        purpose : str
            What needs them, e.g. ``"a training batch"``.

        Raises
        ------
        AsrError
            One line: what the pool holds, what is needed and the fix.
        """
        if len(self) < minimum:
            raise AsrError(f"the {kind} pool has {self.describe()}; {purpose} needs at least "
                           f"{minimum} distinct pairs: add pieces to the split's {kind} list "
                           "(or build performances of the config's synths for them)")

    def batches(self, batch_size: int, rng: np.random.Generator, augment: bool = True):
        """Endless shuffled batches of at most ``batch_size`` pairs.

        Every pass visits each pair once, in a fresh order, split into
        ``ceil(len(self) / batch_size)`` batches of nearly equal size (none
        smaller than ``batch_size // 2`` unless the pool is): a pool smaller
        than one batch yields the whole pool each time, and no remainder is
        dropped. The CCA layer needs 2 pairs per batch, so the pool must hold
        at least 2.

        Yields
        ------
        sheets, specs : np.ndarray
            As :meth:`pairs`.

        Raises
        ------
        AsrError
            For a pool of fewer than 2 pairs.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.require(2, "train", "a batch")
        while True:
            order = rng.permutation(len(self))
            for chunk in np.array_split(order, -(-len(order) // batch_size)):
                yield self.pairs(chunk, augment=augment, rng=rng)

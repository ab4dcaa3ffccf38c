"""Snippet pools: (sheet snippet, spectrogram excerpt) pairs for training and testing.

An *entity* is one aligned onset of one performance: (piece, performance,
onset frame, strip x). Training pools sample entities with augmentation;
test pools are fixed and ordered.

The original's augmentation (all in :class:`Augmentation`): vertical system
translation, sheet scaling, onset jitter; the choice among synths and tempi
is the choice among pre-rendered performances. On top of it, each off by
default so that a configuration without them gives the same pairs as before:

* **tempo stretch** -- the excerpt of a performance played ``r`` times as
  fast (``r`` log-uniform in a range), cut as ``r * context`` frames around
  the onset and resampled to ``context`` frames (:func:`stretched_excerpt`);
* **scan** -- scan-like degradation of the sheet snippet with a probability
  (:func:`~audio_sheet_retrieval.data.page_quality.degrade_snippet`);
  staff-height scaling stays with ``sheet_scaling``, applied in
  :func:`sheet_snippet` before the crop, so a smaller staff never shows
  white borders of its own;
* **audio effects** -- room reverb, noise, equalizer and compression on the
  excerpt's spectrogram, each with its probability
  (:func:`~audio_sheet_retrieval.audio.augment.augment_spectrogram`), with a
  lead-in before the excerpt so that the reverberation of earlier notes is
  heard in its first frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from audio_sheet_retrieval.audio.augment import AudioAugmentOptions, augment_spectrogram
from audio_sheet_retrieval.audio.spectrogram import FPS
from audio_sheet_retrieval.data.page_quality import ScanOptions, degrade_snippet
from audio_sheet_retrieval.data.prepare import PreparedPiece
from audio_sheet_retrieval.errors import AsrError

SNIPPET_SCAN = ScanOptions(scale=(1.0, 1.0))
"""The default scan degradation of snippets: :class:`ScanOptions`' defaults without its own
scaling (``Augmentation.sheet_scaling`` scales before the crop)."""


@dataclass(frozen=True)
class Augmentation:
    """Augmentation parameters (all off by default).

    Attributes
    ----------
    system_translation : int
        Largest vertical shift of the snippet, pixels (reduced where the
        scaled window would leave the strip, see :func:`fit_shifts`).
    sheet_scaling : (float, float)
        Range of the sheet scale factor (uniform; nearest neighbour; > 1
        enlarges the music), applied before the crop.
    onset_translation : int
        Largest shift of the excerpt centre, frames.
    tempo_stretch : (float, float)
        Range of the tempo ratio ``r`` of :func:`stretched_excerpt`
        (log-uniform; ``r > 1`` plays faster: the excerpt spans ``r``
        times more of the performance). ``(1, 1)``: off.
    scan_p : float
        Probability that a sheet snippet is degraded with ``scan``.
    scan : ScanOptions
        The degradation's ranges and per-stage probabilities; its ``scale``
        must be ``(1, 1)`` (scaling is ``sheet_scaling``'s).
    audio_effects : AudioAugmentOptions or None
        Spectrogram-domain effects, each with its probability; None: off.
    """

    system_translation: int = 0
    sheet_scaling: tuple[float, float] = (1.0, 1.0)
    onset_translation: int = 0
    tempo_stretch: tuple[float, float] = (1.0, 1.0)
    scan_p: float = 0.0
    scan: ScanOptions = field(default=SNIPPET_SCAN)
    audio_effects: AudioAugmentOptions | None = None

    def __post_init__(self):
        lo, hi = self.tempo_stretch
        if not 0 < lo <= hi:
            raise ValueError(f"tempo_stretch must be [lo, hi] with 0 < lo <= hi, got {self.tempo_stretch}")
        if not 0.0 <= self.scan_p <= 1.0:
            raise ValueError(f"scan_p must lie within [0, 1], got {self.scan_p}")
        if self.scan.scale != (1.0, 1.0):
            raise ValueError("scan.scale must be (1, 1): staff-height scaling is sheet_scaling, "
                             "applied before the crop")

    @classmethod
    def from_config(cls, augment: dict) -> Augmentation:
        """The augmentation of a validated config's ``AUGMENT`` mapping.

        ``tempo_stretch`` ([lo, hi]), ``scan`` (``p`` and :class:`ScanOptions`
        fields) and ``audio_effects`` (:class:`AudioAugmentOptions` fields)
        are optional; see :mod:`audio_sheet_retrieval.config.exp_config`.
        """
        lo, hi = augment["sheet_scaling"]
        tlo, thi = augment.get("tempo_stretch", (1.0, 1.0))
        scan = dict(augment.get("scan") or {})
        scan_p = float(scan.pop("p", 0.0))
        effects = augment.get("audio_effects")
        return cls(int(augment["system_translation"]), (float(lo), float(hi)),
                   int(augment["onset_translation"]), (float(tlo), float(thi)), scan_p,
                   ScanOptions(**{"scale": (1.0, 1.0), **_tuples(scan)}),
                   None if effects is None else AudioAugmentOptions(**_tuples(effects)))

    @property
    def active(self) -> bool:
        return bool(self.system_translation or self.onset_translation
                    or self.sheet_scaling != (1.0, 1.0) or self.tempo_stretch != (1.0, 1.0)
                    or self.scan_p > 0 or self.audio_effects is not None)

    @property
    def lead_in(self) -> int:
        """Frames before an excerpt that its effects see: the longest reverberation
        time (0 without reverb)."""
        effects = self.audio_effects
        if effects is None or effects.p_reverb <= 0:
            return 0
        return int(math.ceil(effects.rt60_s[1] * FPS))


def _tuples(options: dict) -> dict:
    """YAML lists as tuples (the option classes are frozen and compare ranges as tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


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
    # two takes of clipped indices (5x faster than an outer fancy index), then white beyond
    r0 = min(max(int(rows[0]), 0), strip.shape[0] - 1)
    c0 = min(max(int(cols[0]), 0), strip.shape[1] - 1)
    r1 = min(max(int(rows[-1]), 0), strip.shape[0] - 1)
    c1 = min(max(int(cols[-1]), 0), strip.shape[1] - 1)
    window = strip[r0:r1 + 1, c0:c1 + 1]
    out = window.take(np.clip(rows - r0, 0, r1 - r0), axis=0).take(np.clip(cols - c0, 0, c1 - c0), axis=1)
    out[(rows < 0) | (rows >= strip.shape[0])] = 255
    out[:, (cols < 0) | (cols >= strip.shape[1])] = 255
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


def fit_shifts(shift_y: np.ndarray, scales: np.ndarray, strip_height: int | np.ndarray,
               height: int | np.ndarray) -> np.ndarray:
    """Vertical shifts reduced so that each scaled window stays within the strip.

    A window of ``height`` rows at scale ``s`` reads ``height / s`` strip rows
    around the strip's middle row plus the shift (:func:`sheet_snippet`);
    beyond the strip it would show white. Each shift is clipped to the range
    that keeps every row inside; a window taller than the strip is centred.
    Shifts already inside are unchanged (with the original's +-5 px at scales
    0.95-1.05 on the 200 px strip, all of them).

    Parameters
    ----------
    shift_y : np.ndarray, shape (n,), int
        Drawn shifts, pixels.
    scales : np.ndarray, shape (n,)
        Scale factors of the windows.
    strip_height : int or np.ndarray, shape (n,)
        Height of each window's strip, pixels.
    height : int or np.ndarray, shape (n,)
        Height of each window, pixels.

    Returns
    -------
    np.ndarray, shape (n,), int64
    """
    extent = (np.asarray(height) / 2 - 0.5) / np.asarray(scales, dtype=np.float64)  # rows either side
    strip_height = np.asarray(strip_height, dtype=np.int64)
    lo = np.ceil(extent).astype(np.int64) - strip_height // 2
    hi = np.ceil(strip_height - extent).astype(np.int64) - 1 - strip_height // 2
    return np.clip(np.asarray(shift_y, dtype=np.int64), np.minimum(lo, 0), np.maximum(hi, 0))


def stretched_excerpt(spec: np.ndarray, frame: int, context: int, ratio: float,
                      lead_in: int = 0) -> np.ndarray:
    """The excerpt of ``spec`` around ``frame`` as if played ``ratio`` times as fast.

    Output frame ``j`` (``0 <= j < lead_in + context``) is the spectrogram
    at fractional frame ``frame + (j - lead_in - context // 2) * ratio``,
    interpolated linearly between its two neighbours (zeros beyond the
    ends): the onset stays at output frame ``lead_in + context // 2``, where
    :func:`spec_excerpt` puts it, and the ``context`` frames after the
    lead-in span about ``round(context * ratio)`` frames of ``spec``. At
    ``ratio`` 1 this is :func:`spec_excerpt` of ``lead_in + context``
    frames, exactly. A performance rendered at tempo ratio ``t`` (``t`` = 1.1
    is 10 % faster) and stretched by ``ratio`` sounds like one at
    ``t * ratio``, up to the shorter or longer notes of the other tempo.

    Parameters
    ----------
    spec : np.ndarray, shape (bins, frames)
    frame : int
        Onset frame.
    context : int
        Excerpt length, output frames.
    ratio : float
        Tempo ratio (> 1 faster: more music in the excerpt).
    lead_in : int
        Output frames before the excerpt (for effects that need the past).

    Returns
    -------
    np.ndarray, shape (bins, lead_in + context), float32
    """
    pos = frame + (np.arange(lead_in + context) - (lead_in + context // 2)) * float(ratio)
    lo = np.floor(pos).astype(np.int64)
    weight = (pos - lo).astype(np.float32)
    first = int(lo[0])
    window = spec_excerpt(spec, first + (int(lo[-1]) + 2 - first) // 2, int(lo[-1]) + 2 - first)
    left = window[:, lo - first]
    right = window[:, lo - first + 1]
    right -= left
    right *= weight
    right += left
    return right


def scan_margin(options: ScanOptions, height: int, width: int) -> int:
    """Pixels cut beyond each side of a snippet before it is degraded with ``options``.

    Rotating a ``height`` x ``width`` window by up to ``rotation_deg`` about
    its centre (and warping it by up to ``warp_px``) reads pixels up to
    ``max(height, width) / 2 * sin(rotation) + warp_px`` beyond it; with that
    margin (plus one) the degraded window's corners show the strip, not a fill.
    """
    reach = max(height, width) / 2 * math.sin(math.radians(options.rotation_deg)) + options.warp_px
    return int(math.ceil(reach)) + 1


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

        With ``augment`` the pool's :class:`Augmentation` is drawn from
        ``rng``: first the original's parameters for the whole batch (scales,
        shifts, onset jitter), then, only where switched on, the tempo ratios
        and which snippets are scanned, then pair by pair the scan and audio
        effects. An augmentation without the newer parts thus draws exactly
        what it always drew.

        Returns
        -------
        sheets : np.ndarray, shape (B, staff_height, sheet_context), uint8
        specs : np.ndarray, shape (B, bins, spec_context), float32
        """
        aug = self.augmentation if augment else Augmentation()
        rng = rng if rng is not None else np.random.default_rng()
        n = len(indices)
        height, width, context = self.staff_height, self.sheet_context, self.spec_context
        sheets = np.empty((n, height, width), dtype=np.uint8)
        n_bins = self.perfs[0][1].spec.shape[0] if self.perfs else 0
        specs = np.empty((n, n_bins, context), dtype=np.float32)
        scales = rng.uniform(*aug.sheet_scaling, n) if aug.sheet_scaling != (1.0, 1.0) else np.ones(n)
        dys = rng.integers(-aug.system_translation, aug.system_translation + 1, n)
        dfs = rng.integers(-aug.onset_translation, aug.onset_translation + 1, n)
        ratios = np.ones(n)
        if aug.tempo_stretch != (1.0, 1.0):
            ratios = np.exp(rng.uniform(*np.log(aug.tempo_stretch), n))
        scanned = rng.random(n) < aug.scan_p if aug.scan_p > 0 else np.zeros(n, dtype=bool)
        margin = scan_margin(aug.scan, height, width) if scanned.any() else 0
        lead = aug.lead_in
        strip_heights = np.array([self.pieces[self.entity_piece[e]].strip.shape[0] for e in indices])
        dys = fit_shifts(dys, scales, strip_heights, np.where(scanned, height + 2 * margin, height))
        for b, e in enumerate(indices):
            piece_idx, perf = self.perfs[self.entity_perf[e]]
            strip = self.pieces[piece_idx].strip
            dy = int(dys[b])
            if scanned[b]:
                big = sheet_snippet(strip, float(self.entity_x[e]), height + 2 * margin,
                                    width + 2 * margin, float(scales[b]), dy)
                sheets[b] = degrade_snippet(big, rng, aug.scan)[margin:margin + height,
                                                                margin:margin + width]
            else:
                sheets[b] = sheet_snippet(strip, float(self.entity_x[e]), height, width,
                                          float(scales[b]), dy)
            frame = int(self.entity_frame[e] + dfs[b])
            if ratios[b] == 1.0 and aug.audio_effects is None:
                specs[b] = spec_excerpt(perf.spec, frame, context)
                continue
            excerpt = stretched_excerpt(perf.spec, frame, context, ratios[b], lead)
            if aug.audio_effects is not None:
                excerpt = augment_spectrogram(excerpt, rng, aug.audio_effects)
            specs[b] = excerpt[:, lead:]
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

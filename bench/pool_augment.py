#!/usr/bin/env python
"""Benchmark of the pool's augmentation: tempo-stretch methods and the cost of each part of a pair.

Writes ``bench/results/pool_augment.json``. Figures are medians over
``--calls`` calls, the candidates of one table timed in interleaved rounds.

- **tempo stretch** of a spectrogram excerpt to ``context`` frames at ratios
  log-uniform over 0.5-2, three ways: the pool's
  :func:`~audio_sheet_retrieval.data.pools.stretched_excerpt` (linear
  interpolation at onset-anchored positions); cutting ``round(context * r)``
  frames and resampling them with :func:`scipy.ndimage.zoom` (order 1); and
  cutting the same frames and multiplying by a linear-interpolation matrix.
  For each: microseconds per excerpt, how far the onset lands from the
  excerpt's centre frame (frames, on a ramp), and the median correlation of
  the tempo-1.0 rendering stretched by 1.1 with the real tempo-1.1 rendering
  (and, as the baseline, of the unstretched one);
- **parts of a pair** under ``exp_configs/world_aug.yaml``: the sheet crop,
  the scan degradation (with its margin), the stretch, the audio effects
  (with the reverb lead-in), and whole batches of 100 under ``full_aug`` and
  ``world_aug``.

``--figure PATH`` also writes a grid of world_aug training pairs
(:func:`~audio_sheet_retrieval.data.plots.plot_snippet_grid`, reduced to a
256-colour palette), as ``docs/figures/world_aug_pairs.png``.

Usage::

    python bench/pool_augment.py --data_root data/msmd --split data/msmd/splits/demo_split.yaml \
        [--figure docs/figures/world_aug_pairs.png]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from audio_sheet_retrieval.audio.augment import augment_spectrogram  # noqa: E402
from audio_sheet_retrieval.config.exp_config import load_config  # noqa: E402
from audio_sheet_retrieval.data.msmd import Piece, load_split  # noqa: E402
from audio_sheet_retrieval.data.mutopia import load_pools  # noqa: E402
from audio_sheet_retrieval.data.page_quality import degrade_snippet  # noqa: E402
from audio_sheet_retrieval.data.pools import (  # noqa: E402
    Augmentation,
    scan_margin,
    sheet_snippet,
    spec_excerpt,
    stretched_excerpt,
)
from audio_sheet_retrieval.data.prepare import prepare_piece  # noqa: E402
from bench.common import write_json  # noqa: E402


def interleaved_medians(candidates: dict, calls: int) -> dict[str, float]:
    """Median seconds per call of each argument-less candidate, timed in interleaved rounds."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(calls):
        for name, fn in candidates.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def zoom_excerpt(spec: np.ndarray, frame: int, context: int, ratio: float) -> np.ndarray:
    """``round(context * ratio)`` frames around ``frame``, zoomed (order 1) to ``context``."""
    n = max(2, int(round(context * ratio)))
    return ndimage.zoom(spec_excerpt(spec, frame, n), (1, context / n), order=1)


def matrix_excerpt(spec: np.ndarray, frame: int, context: int, ratio: float) -> np.ndarray:
    """``round(context * ratio)`` frames around ``frame`` times a linear-interpolation matrix
    (end points aligned, as ``zoom``)."""
    n = max(2, int(round(context * ratio)))
    pos = np.linspace(0, n - 1, context)
    lo = np.minimum(np.floor(pos).astype(int), n - 2)
    m = np.zeros((n, context), dtype=np.float32)
    m[lo, np.arange(context)] = 1 - (pos - lo)
    m[lo + 1, np.arange(context)] = pos - lo
    return spec_excerpt(spec, frame, n) @ m


METHODS = {"pool_stretched_excerpt": stretched_excerpt, "cut_then_ndimage_zoom": zoom_excerpt,
           "cut_then_matrix": matrix_excerpt}


def stretch_methods(root: str, piece_name: str, calls: int) -> dict:
    """Speed, onset placement and fidelity to a real faster rendering of each stretch method."""
    rng = np.random.default_rng(0)
    ramp = np.tile(np.arange(2000, dtype=np.float32), (92, 1))
    out: dict = {}
    for context in (42, 84):
        ratios = np.exp(rng.uniform(np.log(0.5), np.log(2.0), calls))
        frames = rng.integers(400, 1600, calls)
        it = {name: iter(range(calls)) for name in METHODS}

        def call(name, fn, context=context, ratios=ratios, frames=frames, it=it):
            i = next(it[name])
            fn(ramp, int(frames[i]), context, float(ratios[i]))

        med = interleaved_medians({name: (lambda n=name, f=fn: call(n, f)) for name, fn in METHODS.items()},
                                  calls)
        onset_error = {name: float(np.max([abs(fn(ramp, 1000, context, r)[0, context // 2] - 1000)
                                           for r in (0.5, 0.7, 0.9, 1.1, 1.5, 2.0)]))
                       for name, fn in METHODS.items()}
        out[str(context)] = {name: {"us_per_excerpt": round(med[name] * 1e6, 1),
                                    "largest_onset_offset_frames": round(onset_error[name], 3)}
                             for name in METHODS}
    prepared = prepare_piece(Piece(root, piece_name), ["FluidR3Grand"], (1.0, 1.1))
    slow, fast = sorted(prepared.performances, key=lambda p: p.tempo)
    if (slow.tempo, fast.tempo) == (1.0, 1.1):
        at = {float(x): f for x, f in zip(slow.xs, slow.frames)}
        matched = [(at[float(x)], f) for x, f in zip(fast.xs, fast.frames)
                   if float(x) in at and 40 <= at[float(x)] < slow.spec.shape[1] - 40]

        def corr(u, v):
            return float(np.corrcoef(u.ravel(), v.ravel())[0, 1])

        fidelity = {"unstretched": statistics.median(
            corr(spec_excerpt(slow.spec, a, 42), spec_excerpt(fast.spec, b, 42)) for a, b in matched)}
        for name, fn in METHODS.items():
            fidelity[name] = statistics.median(corr(fn(slow.spec, a, 42, 1.1), spec_excerpt(fast.spec, b, 42))
                                               for a, b in matched)
        out["correlation_with_real_tempo_1.1"] = {"piece": piece_name, "onsets": len(matched),
                                                  **{k: round(v, 4) for k, v in fidelity.items()}}
    return out


def pair_parts(root: str, split: str, calls: int) -> dict:
    """Cost of each part of a world_aug pair, and of whole batches under full_aug and world_aug."""
    world = load_config(REPO / "exp_configs" / "world_aug.yaml")
    aug = Augmentation.from_config(world["AUGMENT"])
    pools = {name: load_pools(root, split, load_config(REPO / "exp_configs" / f"{name}.yaml"),
                              kinds=("train",), progress=False)["train"]
             for name in ("full_aug", "world_aug")}
    pool = pools["world_aug"]
    rng = np.random.default_rng(0)
    entities = rng.integers(0, len(pool), calls)
    m = scan_margin(aug.scan, 160, 200)
    strip = pool.pieces[0].strip
    x = float(pool.entity_x[0])
    big = sheet_snippet(strip, x, 160 + 2 * m, 200 + 2 * m, 0.9, 0)
    perf = pool.perfs[0][1]
    frame = int(perf.frames[len(perf.frames) // 2])
    lead = aug.lead_in
    excerpt = stretched_excerpt(perf.spec, frame, 42, 1.3, lead)
    every = aug.audio_effects.__class__(p_reverb=1, p_noise=1, p_eq=1, p_compress=1)
    parts = interleaved_medians({
        "sheet_crop": lambda: sheet_snippet(strip, x, 160, 200, 0.9, 0),
        "scan_degrade_with_margin": lambda: degrade_snippet(big, rng, aug.scan),
        "spec_excerpt": lambda: spec_excerpt(perf.spec, frame, 42),
        "stretched_excerpt_with_lead_in": lambda: stretched_excerpt(perf.spec, frame, 42, 1.3, lead),
        "audio_effects_world_aug": lambda: augment_spectrogram(excerpt, rng, aug.audio_effects),
        "audio_effects_every_one": lambda: augment_spectrogram(excerpt, rng, every),
    }, calls)
    batches = interleaved_medians({
        name: (lambda p=p: p.pairs(rng.integers(0, len(p), 100), augment=True, rng=rng))
        for name, p in pools.items()}, max(10, calls // 20))
    return {"scan_margin_px": m, "lead_in_frames": lead, "entities": int(len(entities)),
            "per_call_us": {k: round(v * 1e6, 1) for k, v in parts.items()},
            "batch_of_100_ms": {k: round(v * 1e3, 2) for k, v in batches.items()}}


def world_aug_figure(root: str, split: str, path: Path, n: int = 10, seed: int = 3) -> Path:
    """PNG grid of ``n`` world_aug training pairs, palette-reduced (a quarter of the bytes)."""
    from PIL import Image

    from audio_sheet_retrieval.atomic import atomic_path
    from audio_sheet_retrieval.data.plots import plot_snippet_grid

    pool = load_pools(root, split, load_config(REPO / "exp_configs" / "world_aug.yaml"), kinds=("train",),
                      progress=False)["train"]
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        plot_snippet_grid(pool, tmp, n=n, seed=seed)
        with Image.open(tmp) as img:
            small = img.convert("RGB").quantize(256)
        small.save(tmp, optimize=True)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_root", default=str(REPO / "data" / "msmd"))
    p.add_argument("--split", default=None, help="default: <data_root>/splits/demo_split.yaml")
    p.add_argument("--piece", default=None, help="piece with FluidR3Grand at tempo 1.0 and 1.1 "
                                                 "(default: the split's first training piece)")
    p.add_argument("--calls", type=int, default=400)
    p.add_argument("--figure", type=Path, default=None, help="write a PNG grid of world_aug pairs here")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    split = args.split or str(Path(args.data_root) / "splits" / "demo_split.yaml")
    if args.figure:
        print(world_aug_figure(args.data_root, split, args.figure))
    piece = args.piece or load_split(split)["train"][0]
    t0 = time.perf_counter()
    result = {"threads": os.environ.get("OMP_NUM_THREADS"), "calls": args.calls,
              "tempo_stretch": stretch_methods(args.data_root, piece, args.calls),
              "world_aug_pair": pair_parts(args.data_root, split, args.calls)}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(write_json("pool_augment", result, args.out))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Benchmark of the data build: engraving, synthesis, features, end to end, pool sampling.

Writes ``bench/results/build_data.json``. Each figure is a median over
repeats; ratios compare against a baseline measured in the same process:

- spectrogram: our batched numpy framing vs a plain per-frame loop;
- end to end: ``--jobs 2`` vs ``--jobs 1`` on the same pieces;
- pool: pairs/s vs realtime need at 100 pairs per training step.

Usage::

    python bench/build_data.py [--pieces bach/bwv259 bach/bwv26*] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio_sheet_retrieval.audio.spectrogram import (  # noqa: E402
    _FILTERBANK,
    FRAME_SIZE,
    n_frames,
    spectrogram,
)
from audio_sheet_retrieval.build.engrave_verovio import engrave  # noqa: E402
from audio_sheet_retrieval.build.pipeline import BuildOptions, build_collection  # noqa: E402
from audio_sheet_retrieval.build.sources import load_musicxml, resolve  # noqa: E402
from audio_sheet_retrieval.build.synth import DEFAULT_SYNTHS, render  # noqa: E402
from audio_sheet_retrieval.data.msmd import Piece  # noqa: E402
from audio_sheet_retrieval.data.pools import Augmentation, SnippetPool  # noqa: E402
from audio_sheet_retrieval.data.prepare import prepare_piece  # noqa: E402
from bench.common import median_seconds, write_json  # noqa: E402


def spectrogram_loop(y: np.ndarray, sr: int = 22050, fps: int = 20) -> np.ndarray:
    """Baseline: the same spectrogram, one frame at a time."""
    out = np.empty((92, n_frames(len(y), sr, fps)), dtype=np.float32)
    padded = np.concatenate([y, np.zeros(FRAME_SIZE, dtype=np.float32)])
    window = np.hanning(FRAME_SIZE)
    for i in range(out.shape[1]):
        start = int(np.floor(i * sr / fps + 0.5))
        mag = np.abs(np.fft.rfft(padded[start:start + FRAME_SIZE] * window))[:FRAME_SIZE // 2]
        out[:, i] = np.log10(1 + mag @ _FILTERBANK)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pieces", nargs="+", default=["bach/bwv846", "bach/bwv259", "bach/bwv26*"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    sources = resolve(args.pieces)
    result: dict = {"pieces": [s.name for s in sources]}

    xml = load_musicxml(resolve(["bach/bwv846"])[0])
    pages = len(engrave(xml).pages)
    result["engrave_verovio_s_per_page"] = median_seconds(lambda: engrave(xml), args.repeats) / pages

    events = engrave(xml).note_events
    duration = events[:, 0].max() + 1.0
    synth_x = {}
    for name in DEFAULT_SYNTHS:
        render(name, events)  # load the soundfont once, as a build worker does
        synth_x[name] = round(duration / median_seconds(lambda n=name: render(n, events), args.repeats), 1)
    result["synth_x_realtime"] = synth_x

    y = render("FluidR3Grand", events)
    minutes = len(y) / 22050 / 60
    ours = median_seconds(lambda: spectrogram(y), args.repeats) / minutes
    loop = median_seconds(lambda: spectrogram_loop(y), 1) / minutes
    result["spectrogram_s_per_audio_minute"] = {"ours": round(ours, 4), "per_frame_loop": round(loop, 4),
                                                "speedup": round(loop / ours, 1)}

    options = BuildOptions(synths=("FluidR3Grand", "TimGM6mbPiano", "ElectricPiano"), tempi=(1.0,))
    rates = {}
    for jobs in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            reports = build_collection(sources, Path(tmp), options, jobs=jobs)
            rates[jobs] = len([r for r in reports if r.status == "built"]) / (time.perf_counter() - t) * 60
            if jobs == 2:
                pieces = [prepare_piece(Piece(tmp, s.name)) for s in sources]
                pool = SnippetPool(pieces, augmentation=Augmentation(5, (0.95, 1.05), 1))
                rng = np.random.default_rng(0)
                it = pool.batches(100, rng)
                per_batch = median_seconds(lambda it=it: next(it), 20)
                result["pool_pairs_per_s"] = round(100 / per_batch, 1)
    result["end_to_end_pieces_per_minute"] = {
        "jobs_1": round(rates[1], 2), "jobs_2": round(rates[2], 2),
        "speedup_jobs_2": round(rates[2] / rates[1], 2),
        "options": {"synths": list(options.synths), "tempi": list(options.tempi)}}
    path = write_json("build_data", result, args.out)
    print(path)
    print(result)


if __name__ == "__main__":
    main()

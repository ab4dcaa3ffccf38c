#!/usr/bin/env python
"""Benchmark of the realism augmentations: sheet degradation and audio effects.

Writes ``bench/results/augmentation.json``. Every figure is a median over
``--calls`` calls (``--page_calls`` for whole pages); the candidates of one
table are timed in interleaved rounds, so a change of machine load hits all
of them alike. Ratios are against our numpy/scipy/PIL implementation.

- sheet snippets (160 x 200 uint8 windows of a real verovio engraving of
  bwv846) and whole pages (1181 x 835): :func:`degrade_snippet` (defaults,
  and every stage on), :func:`degrade_page` at each level, and comparable
  pipelines of ``albumentations`` and ``augraphy`` when installed (rotation
  and scaling, warp, levels and texture, blur, noise, JPEG, binarization);
  the share of a training step (batch 100, ``--step_s`` seconds) they take;
- audio, per second of a real synth rendering (FluidR3Grand): our waveform
  chain and each effect, the 92-band spectrogram (needed again after any
  waveform effect), ``pedalboard`` (Freeverb, peaking filters, compressor;
  and its convolution with our impulse response), ``audiomentations``
  (RoomSimulator, SevenBandParametricEQ, AddColorNoise), ``pyroomacoustics``
  (image-source room impulse responses), when installed; our spectrogram-
  domain chain per excerpt of 42, 84 and 168 frames; and what each way costs
  per training pair and per batch of 100.

``--figure`` writes a PNG of examples (snippets, then pages at each level);
``--library_figure`` the same snippets through the libraries.

Usage::

    python bench/augmentation.py [--calls 200] [--page_calls 200] [--figure reports/page_quality_examples.png]
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio_sheet_retrieval.audio import augment as audio_aug  # noqa: E402
from audio_sheet_retrieval.audio.spectrogram import SR, spectrogram  # noqa: E402
from audio_sheet_retrieval.data import page_quality as pq  # noqa: E402
from bench.common import write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LEAD_IN_S = 1.5
"""Audio before an excerpt that an on-the-fly reverb needs (the longest tail), seconds."""


def interleaved_medians(candidates: dict, calls: int, inputs: list) -> dict[str, float]:
    """Median seconds per call of each candidate, timed in interleaved rounds.

    Parameters
    ----------
    candidates : dict of str to callable
        Each takes one input.
    calls : int
    inputs : list
        Cycled through.
    """
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for i in range(calls):
        x = inputs[i % len(inputs)]
        for name, fn in candidates.items():
            t = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def optional(module: str):
    """The module, or None when it is not installed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ImportError:
        return None


# --------------------------------------------------------------------------
# Material
# --------------------------------------------------------------------------


def engraved_material() -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Pages, 160 x 200 snippets and note events of bwv846, engraved with verovio."""
    from audio_sheet_retrieval.build.engrave_verovio import engrave
    from audio_sheet_retrieval.build.sources import load_musicxml, resolve

    engraved = engrave(load_musicxml(resolve(["bach/bwv846"])[0]))
    snippets = []
    for s in engraved.systems:
        page = engraved.pages[s.page]
        cy = int(round((s.top + s.bottom) / 2))
        top = min(max(cy - 80, 0), page.shape[0] - 160)
        for x in range(int(s.left) + 100, int(s.right) - 100, 150):
            snippets.append(np.ascontiguousarray(page[top:top + 160, x - 100:x + 100]))
    return engraved.pages, snippets, engraved.note_events


# --------------------------------------------------------------------------
# Sheet
# --------------------------------------------------------------------------


def library_pipelines(seed_rng: np.random.Generator) -> tuple[dict, dict, dict]:
    """Comparable albumentations / augraphy pipelines: (snippet fns, page fns, versions)."""
    snippet_fns, page_fns, versions = {}, {}, {}
    albu = optional("albumentations")
    if albu is not None:
        import cv2

        cv2.setNumThreads(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compose = albu.Compose([
                albu.Affine(rotate=(-1, 1), scale=(0.9, 1.1), fill=255, p=0.5),
                albu.GridDistortion(num_steps=2, distort_limit=0.02, border_mode=cv2.BORDER_CONSTANT,
                                    fill=255, p=0.5),
                albu.RandomBrightnessContrast(brightness_limit=(-0.15, 0.0), contrast_limit=(-0.4, 0.0),
                                             p=0.7),
                albu.PlasmaBrightnessContrast(brightness_range=(-0.05, 0.05), contrast_range=(-0.05, 0.05),
                                              p=0.7),
                albu.GaussianBlur(sigma_limit=(0.3, 1.0), blur_limit=0, p=0.5),
                albu.GaussNoise(std_range=(0.01, 0.05), p=0.5),
                albu.ImageCompression(quality_range=(25, 90), p=0.3),
            ], seed=0)

        def run_albu(img):  # reseeded from our Generator, as the pool would need it
            compose.set_random_seed(int(seed_rng.integers(2 ** 31)))
            return compose(image=img)["image"]

        snippet_fns["albumentations"] = page_fns["albumentations"] = run_albu
        versions["albumentations"] = albu.__version__
        versions["opencv"] = cv2.__version__
    aug = optional("augraphy")
    if aug is not None:
        import cv2

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipeline = aug.AugraphyPipeline(
                ink_phase=[aug.InkBleed(p=0.5), aug.LowInkRandomLines(p=0.3)],
                paper_phase=[aug.NoiseTexturize(p=0.7), aug.BrightnessTexturize(p=0.5)],
                post_phase=[aug.Geometric(rotate_range=(-1, 1), p=0.5), aug.SubtleNoise(p=0.5),
                            aug.Jpeg(quality_range=(25, 90), p=0.3), aug.Faxify(p=0.15)],
                random_seed=0)

        # augraphy writes every input image as a PNG into ./augraphy_cache on every
        # call (part of its cost): keep that out of the working tree
        cache_dir = tempfile.mkdtemp(prefix="augraphy_")
        atexit.register(shutil.rmtree, cache_dir, True)

        def run_augraphy(img):
            here = os.getcwd()
            os.chdir(cache_dir)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = pipeline(img)
            finally:
                os.chdir(here)
            return cv2.cvtColor(out, cv2.COLOR_BGR2GRAY) if out.ndim == 3 else out

        def raw_augraphy(img):
            here = os.getcwd()
            os.chdir(cache_dir)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return pipeline(img)
            finally:
                os.chdir(here)

        run_augraphy.raw = raw_augraphy

        snippet_fns["augraphy"] = page_fns["augraphy"] = run_augraphy
        versions["augraphy"] = aug.__version__
    return snippet_fns, page_fns, versions


def bench_sheet(pages: list[np.ndarray], snippets: list[np.ndarray], calls: int, page_calls: int,
                step_s: float) -> dict:
    """Cost per snippet and per page of ours and the libraries."""
    rng = np.random.default_rng(0)
    every = pq.ScanOptions(p_geometry=1, p_print=1, p_blur=1, p_noise=1, p_binarize=1, p_jpeg=1)
    lib_snippet, lib_page, versions = library_pipelines(np.random.default_rng(1))
    lib_raw = {name: getattr(fn, "raw", fn) for name, fn in lib_snippet.items()}
    snippet_fns = {"ours_default": lambda img: pq.degrade_snippet(img, rng),
                   "ours_every_stage": lambda img: pq.degrade_snippet(img, rng, every), **lib_snippet}
    per_snippet = interleaved_medians(snippet_fns, calls, snippets)
    page_fns = {f"ours_{level.replace(' ', '_')}": (lambda img, lv=level: pq.degrade_page(img, rng, lv))
                for level in pq.PAGE_LEVELS if level != "clean"}
    page_fns.update(lib_page)
    per_page = interleaved_medians(page_fns, page_calls, pages)
    produce = {}
    for name, fn in snippet_fns.items():  # raw outputs (before any conversion of ours)
        raw = lib_raw.get(name, fn)
        outs = [raw(snippets[k % len(snippets)]) for k in range(20)]
        produce[name] = {"shape_kept_share": sum(o.shape == snippets[0].shape for o in outs) / 20,
                         "output_shapes": sorted({str(o.shape) for o in outs}),
                         "dtype": str(outs[0].dtype)}
    base = per_snippet["ours_default"]
    return {
        "snippet_shape": list(snippets[0].shape), "page_shape": list(pages[0].shape),
        "calls": calls, "page_calls": page_calls, "library_versions": versions,
        "per_snippet_ms": {k: round(v * 1e3, 3) for k, v in per_snippet.items()},
        "per_snippet_ratio_to_ours_default": {k: round(v / base, 2) for k, v in per_snippet.items()},
        "batch100_share_of_step": {k: round(100 * v / step_s, 3) for k, v in per_snippet.items()},
        "per_page_ms": {k: round(v * 1e3, 1) for k, v in per_page.items()},
        "per_page_ratio_to_ours_scan": {k: round(v / per_page["ours_scan"], 2) for k, v in per_page.items()},
        "output": produce,
    }


def _fit(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``img`` centre-cropped or padded with white to ``shape``."""
    out = np.full(shape, 255, np.uint8)
    h, w = min(shape[0], img.shape[0]), min(shape[1], img.shape[1])
    r0, c0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    out[(shape[0] - h) // 2:(shape[0] - h) // 2 + h, (shape[1] - w) // 2:(shape[1] - w) // 2 + w] = \
        img[r0:r0 + h, c0:c0 + w]
    return out


def examples_figure(pages: list[np.ndarray], snippets: list[np.ndarray], path: Path,
                    library_fns: dict | None = None) -> Path:
    """PNG grid: three snippets clean then degraded (ours, or each library), then page crops."""
    from PIL import Image

    rng = np.random.default_rng(1)
    picks = [snippets[k * len(snippets) // 3 + 2] for k in range(3)]
    rows = []
    for s in picks:
        if library_fns:
            row = [s] + [fn(s) for fn in library_fns.values() for _ in range(2)]
        else:
            row = [s] + [pq.degrade_snippet(s, rng) for _ in range(4)]
        row = [_fit(x, s.shape) for x in row]  # augraphy may return another size
        rows.append(np.concatenate([np.pad(x, 3, constant_values=128) for x in row], axis=1))
    grid = np.concatenate(rows, axis=0)
    if not library_fns:
        crops = [np.pad(pq.degrade_page(pages[0], np.random.default_rng(5), level).image[190:450, 60:400], 3,
                        constant_values=128) for level in pq.PAGE_LEVELS]
        strip = np.concatenate(crops, axis=1)
        width = max(grid.shape[1], strip.shape[1])
        grid = np.concatenate([np.pad(grid, ((0, 6), (0, width - grid.shape[1])), constant_values=255),
                               np.pad(strip, ((0, 0), (0, width - strip.shape[1])), constant_values=255)])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path, optimize=True)
    return path


# --------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------


def bench_audio(note_events: np.ndarray, calls: int, step_s: float, seconds: float = 10.0) -> dict:
    """Cost per second of audio of ours and the libraries, and per training pair."""
    from audio_sheet_retrieval.build.synth import render

    y = render("FluidR3Grand", note_events[note_events[:, 0] < seconds])[:int(seconds * SR)]
    y = np.ascontiguousarray(y, dtype=np.float32)
    rng = np.random.default_rng(0)
    every = audio_aug.AudioAugmentOptions(p_reverb=1, p_noise=1, p_eq=1, p_compress=1)
    room = audio_aug.Room(1.0, 0.6, 3.0, 0.01)
    ir = audio_aug.impulse_response(room, rng)
    sos = audio_aug.draw_eq(rng)
    fns = {
        "ours_chain_every_effect": lambda x: audio_aug.augment_audio(x, rng, every),
        "ours_impulse_response_rt60_1s": lambda x: audio_aug.impulse_response(room, rng),
        "ours_reverb_rt60_1s": lambda x: audio_aug.reverb(x, ir),
        "ours_equalize": lambda x: audio_aug.equalize(x, sos),
        "ours_compress": lambda x: audio_aug.compress(x, -6.0, 3.0),
        "ours_noise": lambda x: audio_aug.add_noise(x, rng, 20.0, 1.0),
        "spectrogram": lambda x: spectrogram(x),
    }
    versions = {}
    pb = optional("pedalboard")
    if pb is not None:
        board = pb.Pedalboard([pb.Reverb(room_size=0.6, wet_level=0.3, dry_level=1.0),
                               pb.PeakFilter(500, 6, 1), pb.PeakFilter(2000, -6, 1),
                               pb.PeakFilter(100, 3, 0.7), pb.Compressor(threshold_db=-12, ratio=3)])
        conv = pb.Convolution(ir, sample_rate=SR)
        fns["pedalboard_chain"] = lambda x: board(x, SR)
        fns["pedalboard_convolution_our_ir"] = lambda x: conv(x, SR)
        versions["pedalboard"] = pb.__version__
    am = optional("audiomentations")
    if am is not None:
        room_sim = am.RoomSimulator(p=1.0)
        chain = am.Compose([am.SevenBandParametricEQ(p=1.0), am.AddColorNoise(p=1.0)])
        fns["audiomentations_room_simulator"] = lambda x: room_sim(samples=x, sample_rate=SR)
        fns["audiomentations_eq_noise"] = lambda x: chain(samples=x, sample_rate=SR)
        versions["audiomentations"] = am.__version__
    pra = optional("pyroomacoustics")
    if pra is not None:
        pra_rng = np.random.default_rng(2)

        def pra_rir(_):
            dims = pra_rng.uniform([4, 4, 2.5], [12, 10, 4])
            e_abs, max_order = pra.inverse_sabine(pra_rng.uniform(0.3, 1.2), dims)
            shoebox = pra.ShoeBox(dims, fs=SR, materials=pra.Material(e_abs), max_order=min(max_order, 12))
            shoebox.add_source(dims * 0.4)
            shoebox.add_microphone(dims * 0.6)
            shoebox.compute_rir()
            return shoebox.rir[0][0]

        fns["pyroomacoustics_rir"] = pra_rir
        versions["pyroomacoustics"] = pra.__version__
    slow = {k for k in fns if k.startswith(("audiomentations_room", "pyroomacoustics"))}
    fast_med = interleaved_medians({k: v for k, v in fns.items() if k not in slow}, calls, [y])
    slow_med = interleaved_medians({k: v for k, v in fns.items() if k in slow}, max(10, calls // 10), [y])
    per_call = {**fast_med, **slow_med}
    ir_makers = ("ours_impulse_response_rt60_1s", "pyroomacoustics_rir")
    per_second_ms = {k: round(v * 1e3 / seconds, 3) for k, v in per_call.items() if k not in ir_makers}
    per_ir_ms = {k: round(per_call[k] * 1e3, 2) for k in ir_makers if k in per_call}
    full = spectrogram(y)
    spec_rng = np.random.default_rng(3)
    per_excerpt_ms, on_the_fly = {}, {}
    for context in (42, 84, 168):
        excerpts = [full[:, s:s + context] for s in range(0, full.shape[1] - context, 7)]
        meds = interleaved_medians({
            "every_effect": lambda e: audio_aug.augment_spectrogram(e, spec_rng, every),
            "default": lambda e: audio_aug.augment_spectrogram(e, spec_rng)}, calls, excerpts)
        med = meds["every_effect"]
        per_excerpt_ms[str(context)] = {k: round(v * 1e3, 4) for k, v in meds.items()}
        wave_s = context / 20.0 + LEAD_IN_S
        wave_ms = wave_s * (per_second_ms["ours_chain_every_effect"] + per_second_ms["spectrogram"])
        on_the_fly[str(context)] = {
            "waveform_then_spectrogram_ms_per_pair": round(wave_ms, 2),
            "waveform_batch100_share_of_step": round(100 * wave_ms / 1e3 / step_s, 3),
            "spectrogram_domain_ms_per_pair": round(med * 1e3, 4),
            "spectrogram_domain_batch100_share_of_step": round(100 * med / step_s, 4),
            "spectrogram_domain_default_batch100_share_of_step": round(100 * meds["default"] / step_s, 4),
        }
    base = per_second_ms["ours_chain_every_effect"]
    return {
        "audio_seconds": seconds, "calls": calls, "library_versions": versions,
        "per_second_of_audio_ms": per_second_ms,
        "per_second_ratio_to_ours_chain": {k: round(v / base, 2) for k, v in per_second_ms.items()},
        "per_impulse_response_ms": per_ir_ms,
        "spectrogram_domain_chain_ms_per_excerpt": per_excerpt_ms,
        "per_training_pair": on_the_fly,
        "lead_in_s": LEAD_IN_S,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=200, help="calls per median (snippets, audio)")
    p.add_argument("--page_calls", type=int, default=200, help="calls per median (whole pages)")
    p.add_argument("--step_s", type=float, default=1.5, help="seconds of a training step at batch 100")
    p.add_argument("--figure", type=Path, default=None, help="write a PNG of our examples here")
    p.add_argument("--library_figure", type=Path, default=None,
                   help="write a PNG of the libraries' examples here")
    p.add_argument("--skip", nargs="*", default=[], choices=["sheet", "audio"])
    p.add_argument("--out", default=None)
    args = p.parse_args()
    t0 = time.perf_counter()
    pages, snippets, note_events = engraved_material()
    result: dict = {"step_s": args.step_s, "threads": os.environ.get("OMP_NUM_THREADS")}
    if args.figure:
        print(examples_figure(pages, snippets, args.figure))
    if args.library_figure:
        fns, _, _ = library_pipelines(np.random.default_rng(1))
        rng = np.random.default_rng(1)
        print(examples_figure(pages, snippets, args.library_figure,
                              {"ours": lambda s: pq.degrade_snippet(s, rng), **fns}))
    if "sheet" not in args.skip:
        result["sheet"] = bench_sheet(pages, snippets, args.calls, args.page_calls, args.step_s)
        print(result["sheet"])
    if "audio" not in args.skip:
        result["audio"] = bench_audio(note_events, args.calls, args.step_s)
        print(result["audio"])
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(write_json("augmentation", result, args.out))


if __name__ == "__main__":
    main()

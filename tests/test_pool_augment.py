"""The pool's realism augmentation: tempo stretch, scan-like snippets, audio effects, world_aug,
and the training batches made by DataLoader workers."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from audio_sheet_retrieval.audio.augment import (
    AudioAugmentOptions,
    band_magnitudes,
    draw_room,
    log_bands,
    reverb_bands,
)
from audio_sheet_retrieval.config.exp_config import load_config, validate_config
from audio_sheet_retrieval.data.msmd import Piece
from audio_sheet_retrieval.data.page_quality import NO_DEGRADATION
from audio_sheet_retrieval.data.pools import (
    SNIPPET_SCAN,
    Augmentation,
    SnippetPool,
    fit_shifts,
    sheet_snippet,
    spec_excerpt,
    stretched_excerpt,
)
from audio_sheet_retrieval.data.prepare import PerformanceData, PreparedPiece, prepare_piece
from audio_sheet_retrieval.data.unroll import SystemBox, Unrolled
from audio_sheet_retrieval.errors import AsrError
from audio_sheet_retrieval.train.loop import EpochBatches, epoch_batches

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "exp_configs").glob("*.yaml"))
BUILT = dict(synths=["FluidR3Grand", "TimGM6mbPiano", "ElectricPiano"], tempo_range=[1.0, 1.1])
"""What ``built_root`` holds (tests/conftest.py)."""


@pytest.fixture(scope="module")
def pieces(built_root) -> list[PreparedPiece]:
    """Both built pieces with all their performances."""
    return [prepare_piece(Piece(built_root, name)) for name in ("bach__bwv846", "bach__bwv259")]


def _pool(pieces, augmentation: Augmentation, context: int = 42) -> SnippetPool:
    return SnippetPool(pieces, 160, 200, context, augmentation)


# --------------------------------------------------------------------------
# Existing configurations: the same pairs as before
# --------------------------------------------------------------------------


def _legacy_pairs(pool: SnippetPool, aug: dict, indices: np.ndarray, rng: np.random.Generator):
    """``SnippetPool.pairs`` as it was before the realism augmentation (commit 94e68b7), verbatim
    in what it draws and computes."""

    def snippet(strip, x, height, width, scale, shift_y):
        cy = strip.shape[0] // 2 + shift_y
        rows = np.floor(cy + (np.arange(height) + 0.5 - height / 2) / scale).astype(np.int64)
        cols = np.floor(x + (np.arange(width) + 0.5 - width / 2) / scale).astype(np.int64)
        out = np.full((height, width), 255, dtype=np.uint8)
        rv = (rows >= 0) & (rows < strip.shape[0])
        cv = (cols >= 0) & (cols < strip.shape[1])
        out[np.ix_(rv, cv)] = strip[np.ix_(rows[rv], cols[cv])]
        return out

    def excerpt(spec, frame, context):
        start = frame - context // 2
        out = np.zeros((spec.shape[0], context), dtype=np.float32)
        lo, hi = max(start, 0), min(start + context, spec.shape[1])
        if hi > lo:
            out[:, lo - start:hi - start] = spec[:, lo:hi]
        return out

    scaling = tuple(float(v) for v in aug["sheet_scaling"])
    n = len(indices)
    sheets = np.empty((n, pool.staff_height, pool.sheet_context), dtype=np.uint8)
    specs = np.empty((n, 92, pool.spec_context), dtype=np.float32)
    scales = rng.uniform(*scaling, n) if scaling != (1.0, 1.0) else np.ones(n)
    dys = rng.integers(-aug["system_translation"], aug["system_translation"] + 1, n)
    dfs = rng.integers(-aug["onset_translation"], aug["onset_translation"] + 1, n)
    for b, e in enumerate(indices):
        piece_idx, perf = pool.perfs[pool.entity_perf[e]]
        sheets[b] = snippet(pool.pieces[piece_idx].strip, float(pool.entity_x[e]), pool.staff_height,
                            pool.sheet_context, float(scales[b]), int(dys[b]))
        specs[b] = excerpt(perf.spec, int(pool.entity_frame[e] + dfs[b]), pool.spec_context)
    return sheets, specs


@pytest.mark.parametrize("path", [c for c in CONFIGS if c.stem != "world_aug"], ids=lambda p: p.stem)
def test_existing_configs_give_the_pairs_they_always_gave(pieces, path):
    config = load_config(path)
    aug = config["AUGMENT"]
    augmentation = Augmentation.from_config(aug)
    assert augmentation == replace(Augmentation(), system_translation=aug["system_translation"],
                                   sheet_scaling=tuple(aug["sheet_scaling"]),
                                   onset_translation=aug["onset_translation"])
    pool = _pool(pieces, augmentation, config["SPEC_CONTEXT"])
    idx = np.random.default_rng(1).integers(0, len(pool), 150)
    for augment in (True, False):
        new = pool.pairs(idx, augment=augment, rng=np.random.default_rng(5))
        old = _legacy_pairs(pool, aug if augment else {"sheet_scaling": [1, 1], "system_translation": 0,
                                                       "onset_translation": 0},
                            idx, np.random.default_rng(5))
        assert new[0].tobytes() == old[0].tobytes() and new[1].tobytes() == old[1].tobytes()


def test_sheet_snippet_is_unchanged_at_every_edge():
    """The faster crop (two takes) equals the outer fancy index it replaced, also beyond the strip."""
    rng = np.random.default_rng(0)
    for width in (30, 150, 3000):
        strip = rng.integers(0, 256, (200, width), dtype=np.uint8)
        for scale in (0.5, 0.8, 1.0, 1.2, 3.0):
            for x in (-300.0, 0.0, 50.5, width - 1.0, width + 20.0):
                for dy in (-150, -5, 0, 7, 300):
                    new = sheet_snippet(strip, x, 160, 200, scale, dy)
                    cy = 100 + dy
                    rows = np.floor(cy + (np.arange(160) + 0.5 - 80) / scale).astype(int)
                    cols = np.floor(x + (np.arange(200) + 0.5 - 100) / scale).astype(int)
                    inside = (rows[:, None] >= 0) & (rows[:, None] < 200) & (cols >= 0) & (cols < width)
                    inner = strip[np.clip(rows, 0, 199)[:, None], np.clip(cols, 0, width - 1)]
                    want = np.where(inside, inner, 255)
                    assert np.array_equal(new, want), (width, scale, x, dy)


# --------------------------------------------------------------------------
# Tempo stretch
# --------------------------------------------------------------------------


def test_stretched_excerpt_keeps_the_onset_and_spans_ratio_times_the_frames():
    spec = np.tile(np.arange(400, dtype=np.float32), (92, 1))  # frame t holds the value t
    for ratio in (0.5, 0.73, 1.0, 1.5, 2.0):
        out = stretched_excerpt(spec, 200, 42, ratio)
        assert out.shape == (92, 42) and out.dtype == np.float32
        want = 200 + (np.arange(42) - 21) * ratio  # linear interpolation of a ramp is exact
        np.testing.assert_allclose(out[0], want, atol=1e-4)
        assert out[0, 21] == 200  # the onset frame stays where spec_excerpt puts it
        assert abs((out[0, -1] - out[0, 0]) + ratio - round(42 * ratio)) <= 1  # ~ round(42 r) frames
    assert np.array_equal(stretched_excerpt(spec, 200, 42, 1.0), spec_excerpt(spec, 200, 42))
    assert np.array_equal(stretched_excerpt(spec, 5, 42, 1.0, lead_in=10), spec_excerpt(spec, 0, 52))
    edge = stretched_excerpt(spec, 10, 42, 2.0)  # zeros (silence) before the start, as spec_excerpt
    assert np.all(edge[:, :16] == 0) and edge[0, 16] == 0 and edge[0, 17] == 2


def test_stretching_a_rendering_approximates_the_rendering_at_that_tempo(pieces):
    """The tempo-1.0 rendering stretched by 1.1 is nearer the real tempo-1.1 rendering than the
    tempo-1.0 rendering is, and stretching the other way (0.91) is farther; the same from 1.1 to 1.0."""

    def corr(u, v):
        return np.corrcoef(u.ravel(), v.ravel())[0, 1]

    for piece in pieces:
        for synth in ("FluidR3Grand", "ElectricPiano"):
            slow, fast = sorted((p for p in piece.performances if p.synth == synth), key=lambda p: p.tempo)
            assert (slow.tempo, fast.tempo) == (1.0, 1.1)
            at = {float(x): f for x, f in zip(slow.xs, slow.frames)}
            matched = [(at[float(x)], f) for x, f in zip(fast.xs, fast.frames)
                       if float(x) in at and 40 <= at[float(x)] < slow.spec.shape[1] - 40]
            assert len(matched) > 50
            r = np.array([(corr(spec_excerpt(slow.spec, a, 42), spec_excerpt(fast.spec, b, 42)),
                           corr(stretched_excerpt(slow.spec, a, 42, 1.1), spec_excerpt(fast.spec, b, 42)),
                           corr(stretched_excerpt(slow.spec, a, 42, 1 / 1.1), spec_excerpt(fast.spec, b, 42)),
                           corr(stretched_excerpt(fast.spec, b, 42, 1 / 1.1), spec_excerpt(slow.spec, a, 42)))
                          for a, b in matched])
            plain, stretched, wrong, back = np.median(r, axis=0)
            assert stretched > plain + 0.03 and back > plain + 0.03 and wrong < plain - 0.03, \
                (piece.name, synth, plain, stretched, wrong, back)
            assert np.mean(r[:, 1] > r[:, 0]) > 0.9


def test_pool_stretches_each_excerpt_by_its_drawn_ratio(pieces):
    pool = _pool(pieces, Augmentation(tempo_stretch=(2.0, 2.0)))
    idx = np.arange(0, len(pool), 97)
    _, specs = pool.pairs(idx, augment=True, rng=np.random.default_rng(0))
    for spec, e in zip(specs, idx):
        perf = pool.perfs[pool.entity_perf[e]][1]
        assert np.array_equal(spec, stretched_excerpt(perf.spec, int(pool.entity_frame[e]), 42, 2.0))
    # log-uniform over [0.5, 2]: the span of a ramp's excerpt is the ratio
    ramp = np.tile(np.arange(5000, dtype=np.float32), (92, 1))
    piece = replace(pieces[0], performances=[PerformanceData("ramp", "x", 1.0, ramp, np.array([2500]),
                                                             np.array([500.0], dtype=np.float32))])
    pool = _pool([piece], Augmentation(tempo_stretch=(0.5, 2.0)))
    _, specs = pool.pairs(np.zeros(4000, dtype=int), augment=True, rng=np.random.default_rng(1))
    log_ratio = np.log2((specs[:, 0, -1] - specs[:, 0, 0]) / 41)
    assert abs(log_ratio.min() + 1) < 0.01 and abs(log_ratio.max() - 1) < 0.01
    assert abs(np.mean(log_ratio)) < 0.03 and abs(np.mean(np.abs(log_ratio)) - 0.5) < 0.03


# --------------------------------------------------------------------------
# Sheet snippets: scaling before the crop, scan-like degradation
# --------------------------------------------------------------------------


def _black_pool(augmentation: Augmentation) -> SnippetPool:
    """A pool over an all-black 200 px strip: any white in a snippet came from beyond the strip."""
    strip = np.zeros((200, 3000), dtype=np.uint8)
    unrolled = Unrolled(strip, [SystemBox(0, 0, 0, 200, 3000)], np.array([0]))
    xs = np.linspace(600, 2400, 40).astype(np.float32)
    perf = PerformanceData("p", "s", 1.0, np.zeros((92, 500), np.float32), np.arange(40) * 10 + 50, xs)
    return _pool([PreparedPiece("black", unrolled, [perf])], augmentation)


def test_smaller_staffs_and_shifts_never_leave_the_strip():
    pool = _black_pool(Augmentation(system_translation=5, sheet_scaling=(0.8, 1.25)))
    sheets, _ = pool.pairs(np.arange(40).repeat(10), augment=True, rng=np.random.default_rng(0))
    assert sheets.max() == 0
    # what fit_shifts keeps: the original's +-5 px at 0.95-1.05 untouched, none at 0.8 (200 rows)
    shifts = np.arange(-5, 6)
    assert np.array_equal(fit_shifts(shifts, np.full(11, 0.95), 200, 160), shifts)
    assert np.array_equal(fit_shifts(shifts, np.full(11, 0.8), 200, 160), np.zeros(11))
    assert np.array_equal(fit_shifts(shifts, np.full(11, 0.5), 200, 160), np.zeros(11))


def test_rotated_scans_show_no_white_corners():
    geometry_only = replace(NO_DEGRADATION, p_geometry=1.0, rotation_deg=1.0, scale=(1.0, 1.0))
    pool = _black_pool(Augmentation(system_translation=5, sheet_scaling=(0.85, 1.25), scan_p=1.0,
                                    scan=geometry_only))
    sheets, _ = pool.pairs(np.arange(40).repeat(10), augment=True, rng=np.random.default_rng(0))
    assert sheets.max() == 0
    # the margin is what keeps them black: degrading the bare window shows white corners
    from audio_sheet_retrieval.data.page_quality import degrade_snippet

    bare = [degrade_snippet(np.zeros((160, 200), np.uint8), np.random.default_rng(seed), geometry_only)
            for seed in range(5)]
    assert max(b.max() for b in bare) == 255


def test_scan_degrades_a_share_p_of_the_snippets(pieces):
    always_printed = replace(SNIPPET_SCAN, p_print=1.0)
    clean = _pool(pieces, Augmentation()).pairs(np.arange(400) * 7, augment=False)[0]
    for p, lo, hi in ((0.0, 0.0, 0.0), (0.5, 0.4, 0.6), (1.0, 1.0, 1.0)):
        pool = _pool(pieces, Augmentation(scan_p=p, scan=always_printed))
        sheets, _ = pool.pairs(np.arange(400) * 7, augment=True, rng=np.random.default_rng(2))
        changed = np.mean([not np.array_equal(a, b) for a, b in zip(sheets, clean)])
        assert lo <= changed <= hi, (p, changed)
        assert sheets.dtype == np.uint8 and sheets.shape == clean.shape


# --------------------------------------------------------------------------
# Audio effects
# --------------------------------------------------------------------------


def test_audio_effects_follow_their_probabilities(pieces):
    idx = np.arange(0, 3000, 11)
    clean = _pool(pieces, Augmentation()).pairs(idx, augment=False)[1]
    off = AudioAugmentOptions(p_reverb=0, p_noise=0, p_eq=0, p_compress=0)
    for options, share in ((off, 0.0), (replace(off, p_eq=1.0), 1.0), (replace(off, p_noise=0.5), 0.5)):
        specs = _pool(pieces, Augmentation(audio_effects=options)).pairs(
            idx, augment=True, rng=np.random.default_rng(3))[1]
        changed = np.mean([not np.array_equal(a, b) for a, b in zip(specs, clean)])
        assert abs(changed - share) < 0.12, (options, changed)


def test_reverb_of_an_excerpt_matches_reverb_of_the_whole_recording(pieces):
    """With its lead-in the excerpt hears the tails of earlier notes: it matches the whole
    performance reverberated, where reverberating the bare excerpt misses them."""
    room = dict(rt60_s=(1.0, 1.0), rt60_high_ratio=(0.6, 0.6), drr_db=(-3.0, -3.0), predelay_s=(0.01, 0.01))
    options = AudioAugmentOptions(p_reverb=1.0, p_noise=0, p_eq=0, p_compress=0, **room)
    perf = next(p for p in pieces[0].performances if p.synth == "FluidR3Grand" and p.tempo == 1.0)
    piece = replace(pieces[0], performances=[perf])
    pool = _pool([piece], Augmentation(audio_effects=options))
    assert pool.augmentation.lead_in == 20
    whole = log_bands(reverb_bands(band_magnitudes(np.asarray(perf.spec)), draw_room(np.random.default_rng(),
                                                                                     options)))
    idx = np.arange(40, len(pool) - 40, 5)
    _, specs = pool.pairs(idx, augment=True, rng=np.random.default_rng(0))
    bare_err, err = [], []
    for spec, e in zip(specs, idx):
        frame = int(pool.entity_frame[e])
        want = spec_excerpt(whole, frame, 42)
        bare = log_bands(reverb_bands(band_magnitudes(spec_excerpt(perf.spec, frame, 42)),
                                      draw_room(np.random.default_rng(), options)))
        err.append(np.abs(spec - want)[:, :5].mean())
        bare_err.append(np.abs(bare - want)[:, :5].mean())
    assert np.median(err) < 1e-4 < 0.01 < np.median(bare_err), (np.median(err), np.median(bare_err))


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


def _config(**augment) -> dict:
    return {"SHEET_CONTEXT": 200, "STAFF_HEIGHT": 160, "SPEC_CONTEXT": 42, "SPEC_BINS": 92, "FPS": 20,
            "AUGMENT": {"system_translation": 5, "sheet_scaling": [0.95, 1.05], "onset_translation": 1,
                        **BUILT, **augment},
            "TEST_SYNTH": "TimGM6mbPiano", "TEST_TEMPO": 1.0}


def test_world_aug_switches_everything_on():
    config = load_config(REPO / "exp_configs" / "world_aug.yaml")
    aug = Augmentation.from_config(config["AUGMENT"])
    assert aug.tempo_stretch == (0.5, 2.0) and aug.sheet_scaling == (0.8, 1.25)
    assert aug.scan_p == 0.5 and aug.scan.scale == (1.0, 1.0) and aug.scan.jpeg_quality == (25, 90)
    effects = aug.audio_effects
    assert (effects.p_reverb, effects.p_noise, effects.p_eq, effects.p_compress) == (0.3, 0.3, 0.3, 0.2)
    from audio_sheet_retrieval.build.synth import SYNTHS

    training = {name for name in SYNTHS if name != config["TEST_SYNTH"]}
    assert set(config["AUGMENT"]["synths"]) == training


@pytest.mark.parametrize("augment, words", [
    ({"tempo_strech": [0.5, 2.0]}, "AUGMENT.tempo_strech is not a key"),
    ({"tempo_stretch": [2.0, 0.5]}, "AUGMENT.tempo_stretch must be [lo, hi]"),
    ({"tempo_stretch": 1.5}, "AUGMENT.tempo_stretch must be [lo, hi]"),
    ({"scan": {"rotation_deg": 1.0}}, "AUGMENT.scan needs p"),
    ({"scan": {"p": 1.5}}, "AUGMENT.scan.p is a probability"),
    ({"scan": {"p": 0.5, "scale": [0.9, 1.1]}}, "AUGMENT.scan.scale: staff-height scaling is AUGMENT.sheet"),
    ({"scan": {"p": 0.5, "blurr": [0.3, 1.0]}}, "AUGMENT.scan.blurr is not an option"),
    ({"scan": {"p": 0.5, "ink": [0, 250]}}, "AUGMENT.scan: ScanOptions: ink must stay darker"),
    ({"audio_effects": {"p_reverb": "often"}}, "AUGMENT.audio_effects.p_reverb must be a number"),
    ({"audio_effects": {"rt60_s": [2.0, 1.0]}}, "AUGMENT.audio_effects: AudioAugmentOptions.rt60_s: low"),
    ({"audio_effects": [0.3]}, "AUGMENT.audio_effects must be a mapping"),
])
def test_bad_augmentation_keys_are_one_line(augment, words):
    with pytest.raises(AsrError) as err:
        validate_config(_config(**augment), "my.yaml")
    message = str(err.value)
    assert message.startswith("my.yaml: ") and words in message and "\n" not in message


def test_a_bad_augmentation_config_stops_training_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_config(scan={"p": 0.5, "scale": [0.9, 1.1]})))
    cmd = [sys.executable, str(REPO / "run_train.py"), "--model", str(REPO / "models" / "demo.py"),
           "--config", str(bad), "--train_split", str(tmp_path / "none.yaml")]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1 and "AUGMENT.scan.scale" in lines[0], out.stderr


# --------------------------------------------------------------------------
# Batches made by DataLoader workers
# --------------------------------------------------------------------------


def test_worker_batches_equal_inline_batches_and_leave_torch_rng_alone(pieces):
    config = load_config(REPO / "exp_configs" / "world_aug.yaml")
    aug = dict(config["AUGMENT"], **BUILT)
    pool = _pool(pieces, Augmentation.from_config(aug))
    order = np.random.default_rng(0).permutation(len(pool))[:600]
    batches = EpochBatches(pool, order, 100, seed=3, epoch=2)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    inline = list(epoch_batches(batches, 0))
    by_workers = list(epoch_batches(batches, 2))
    assert torch.equal(torch.get_rng_state(), state)
    assert len(inline) == len(by_workers) == 6
    for (s0, x0), (s1, x1) in zip(inline, by_workers):
        assert np.array_equal(s0, np.asarray(s1)) and np.array_equal(x0, np.asarray(x1))
    assert np.array_equal(batches[4][0], inline[4][0])  # a batch does not depend on the ones before
    assert not np.array_equal(inline[0][1], EpochBatches(pool, order, 100, seed=3, epoch=3)[0][1])


def test_training_with_workers_resumes_exactly_and_ignores_the_worker_count(pieces, tmp_path):
    """world_aug training: 2 epochs by 2 workers == 1 epoch inline + a resumed epoch by 1 worker."""
    from audio_sheet_retrieval.nn.module_loader import load_model_module
    from audio_sheet_retrieval.train.experiment import ExperimentPaths
    from audio_sheet_retrieval.train.loop import TrainOptions, fit

    config = load_config(REPO / "exp_configs" / "world_aug.yaml")
    config = dict(config, AUGMENT=dict(config["AUGMENT"], **BUILT))
    train = _pool(pieces, Augmentation.from_config(config["AUGMENT"]))
    valid = _pool(pieces[:1], Augmentation())

    def model():
        torch.manual_seed(0)
        return load_model_module(REPO / "models" / "demo.py").build_model(config)

    def options(epochs, workers):
        return TrainOptions(epoch_samples=200, n_valid=100, max_epochs=epochs, cca_pairs=200, workers=workers)

    cpu = torch.device("cpu")
    full = model()
    fit(full, train, valid, ExperimentPaths(tmp_path / "a", "t"), cpu, options(2, 2), log=lambda _: None)
    paths = ExperimentPaths(tmp_path / "b", "t")
    fit(model(), train, valid, paths, cpu, options(1, 0), log=lambda _: None)
    resumed = model()
    state = fit(resumed, train, valid, paths, cpu, options(2, 1), resume=True, log=lambda _: None)
    assert state.epoch == 2
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name

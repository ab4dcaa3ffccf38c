"""Fault injection for the training side: bad data, degenerate pools, divergence, full disks,
wrong checkpoints, splits that overlap, exit statuses; and the fidelity fixes that go with them.

Each test corrupts a copy of the real built data (``built_root``) or feeds a wrong file, and
checks for one clear line (or the right behaviour) instead of a traceback or a silent answer.
New names are imported inside the tests, so the module also runs against older code.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from audio_sheet_retrieval.config.exp_config import load_config
from audio_sheet_retrieval.data.msmd import Piece, load_split
from audio_sheet_retrieval.data.mung import NOTEHEAD_CLASSES, read_mung, write_mung
from audio_sheet_retrieval.data.mutopia import load_pools
from audio_sheet_retrieval.data.pools import SnippetPool
from audio_sheet_retrieval.data.prepare import prepare_piece
from audio_sheet_retrieval.errors import AsrError
from audio_sheet_retrieval.nn.module_loader import load_model_module
from audio_sheet_retrieval.train.experiment import ExperimentPaths
from audio_sheet_retrieval.train.loop import TrainOptions, fit

REPO = Path(__file__).resolve().parents[1]
SMALL = "bach__bwv259"   # 227 notes, 1 page
LARGE = "bach__bwv846"   # 533 notes, 2 pages
PERF = f"{SMALL}_tempo-1000_FluidR3Grand"
QUICK = TrainOptions(epoch_samples=100, n_valid=50, max_epochs=1, cca_pairs=200)


def _quiet(_line: str) -> None:
    pass


def _copy_root(built_root: Path, dest: Path, pieces=(SMALL,)) -> Path:
    """A data root holding copies of ``pieces`` (features and scores, no audio)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in pieces:
        shutil.copytree(built_root / name, dest / name, ignore=shutil.ignore_patterns("*.flac"))
    shutil.copy(built_root / "manifest.yaml", dest / "manifest.yaml")
    return dest


def _features(root: Path, perf: str = PERF) -> Path:
    return root / perf.split("_tempo-")[0] / "performances" / perf / "features"


def _split(path: Path, train, valid, test) -> Path:
    path.write_text(yaml.safe_dump({"train": list(train), "valid": list(valid), "test": list(test)}))
    return path


def _demo_model(config: dict):
    torch.manual_seed(0)
    return load_model_module(REPO / "models" / "demo.py").build_model(config)


def _script(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=600, env=full_env)


def _one_line(proc: subprocess.CompletedProcess) -> str:
    """The one line a failing script printed on stderr (besides progress bars)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "%|" not in ln]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    return lines[0]


# ------------------------------------------------------------------ data validated at load time


def test_spectrogram_shorter_than_its_onsets_is_refused(built_root, tmp_path):
    root = _copy_root(built_root, tmp_path / "root")
    spec_file = _features(root) / f"{PERF}_spec.npy"
    np.save(spec_file, np.load(spec_file)[:, :200])   # the piece's onsets reach frame ~460
    with pytest.raises(AsrError, match="shorter than its onsets") as err:
        prepare_piece(Piece(root, SMALL), ["FluidR3Grand"], (1.0, 1.0))
    assert str(spec_file) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("case, message", [
    ("nan", "NaN or infinite"), ("inf", "NaN or infinite"), ("int", "expected"),
    ("empty", "expected"), ("bins", "expected"),
])
def test_bad_spectrogram_values_are_refused(built_root, tmp_path, case, message):
    root = _copy_root(built_root, tmp_path / "root")
    spec_file = _features(root) / f"{PERF}_spec.npy"
    spec = np.load(spec_file)
    bad = {"nan": lambda s: np.where(np.arange(s.shape[1]) == 100, np.nan, s).astype(np.float32),
           "inf": lambda s: np.where(np.arange(s.shape[1]) == 7, np.inf, s).astype(np.float32),
           "int": lambda s: (s * 100).astype(np.int32),
           "empty": lambda s: s[:, :0],
           "bins": lambda s: s[:80]}[case](spec)
    np.save(spec_file, bad)
    with pytest.raises(AsrError, match=message) as err:
        prepare_piece(Piece(root, SMALL), ["FluidR3Grand"], (1.0, 1.0))
    assert str(spec_file) in str(err.value) and "\n" not in str(err.value)


def test_note_events_onsets_and_noteheads_must_agree(built_root, tmp_path):
    root = _copy_root(built_root, tmp_path / "root")
    onsets_file = _features(root) / f"{PERF}_onsets.npy"
    onsets = np.load(onsets_file)
    np.save(onsets_file, onsets[:-1])
    with pytest.raises(AsrError, match="226 onset frames for 227 note events") as err:
        prepare_piece(Piece(root, SMALL), ["FluidR3Grand"], (1.0, 1.0))
    assert str(onsets_file) in str(err.value)
    shifted = onsets.copy()
    shifted[10] += 3   # one note event's onset no longer matches its notehead
    np.save(onsets_file, shifted)
    with pytest.raises(AsrError, match="disagrees with note event 10") as err:
        prepare_piece(Piece(root, SMALL), ["FluidR3Grand"], (1.0, 1.0))
    assert "mung" in str(err.value) and "\n" not in str(err.value)
    np.save(onsets_file, onsets.astype(np.float64) - 0.5)  # not whole frame numbers
    with pytest.raises(AsrError, match="whole numbers"):
        prepare_piece(Piece(root, SMALL), ["FluidR3Grand"], (1.0, 1.0))


def test_a_split_that_lists_a_number_is_one_line(built_root, tmp_path, test_config):
    split = tmp_path / "numbers.yaml"
    split.write_text(f"train:\n- 123\nvalid: [{SMALL}]\ntest: [{SMALL}]\n")
    with pytest.raises(AsrError, match=r"123.*not a piece name") as err:
        load_pools(built_root, split, test_config, kinds=("train",), progress=False)
    assert str(split) in str(err.value)
    split.write_text(f"train: {LARGE}\nvalid: [{SMALL}]\ntest: [{SMALL}]\n")
    with pytest.raises(AsrError, match="train must be a list"):
        load_split(split)
    split.write_text(f"train: ['..']\nvalid: [{SMALL}]\ntest: [{SMALL}]\n")
    with pytest.raises(AsrError, match="not a piece (folder )?name"):
        load_split(split)


def test_alignment_is_keyed_by_page_and_object_id(built_root):
    piece = Piece(built_root, LARGE)   # two pages: MuNG ids restart on the second
    perf = f"{LARGE}_tempo-1000_FluidR3Grand"
    alignment = piece.load_alignment(perf)
    assert len(alignment) == 533 and all(len(entry) == 3 for entry in alignment)
    keys = [(page, objid) for page, objid, _ in alignment]
    assert len(set(keys)) == len(keys)
    assert len({objid for _, objid, _ in alignment}) < len(keys)   # ids alone collide
    mungos = piece.load_score().load_mungos()
    by_key = {(page, o.objid): o for page, objs in enumerate(mungos) for o in objs}
    for page, objid, event in alignment:
        assert by_key[(page, objid)].data[f"{perf}_note_event_idx"] == event


def test_noteheads_are_placed_by_their_own_pages_system(built_root):
    from audio_sheet_retrieval.data.prepare import place_noteheads

    piece = Piece(built_root, LARGE)
    prepared = prepare_piece(piece, ["FluidR3Grand"], (1.0, 1.0))
    heads = place_noteheads(piece.load_score().load_mungos(), prepared.unrolled)
    assert {h.page for h in heads} == {0, 1}
    for h in heads:   # every head sits in its system's band of the strip, on its own page
        box = prepared.unrolled.systems[h.system]
        assert box.page == h.page
        x0 = prepared.unrolled.x_offsets[h.system]
        assert x0 <= h.x <= x0 + (box.right - box.left)


# ------------------------------------------------------------------ degenerate pools


def _one_note_root(built_root: Path, dest: Path) -> Path:
    """A copy of SMALL where a single notehead keeps its alignment (a one-note data set)."""
    root = _copy_root(built_root, dest)
    mung_dir = next((root / SMALL / "scores").iterdir()) / "mung"
    kept = False
    for path in sorted(mung_dir.glob("*.xml")):
        objs = read_mung(path)
        for o in objs:
            aligned = any(k.endswith("_onset_frame") for k in o.data)
            if o.clsname in NOTEHEAD_CLASSES and aligned:
                if kept:
                    o.data = {k: v for k, v in o.data.items()
                              if not k.endswith(("_onset_frame", "_onset_seconds", "_note_event_idx"))}
                kept = True
        write_mung(objs, path)
    return root


def test_a_one_note_data_set_is_refused(built_root, tmp_path, test_config):
    root = _one_note_root(built_root, tmp_path / "one_note")
    split = _split(tmp_path / "one.yaml", [SMALL], [SMALL], [SMALL])
    pools = load_pools(root, split, test_config, kinds=("train", "valid"), progress=False)
    assert len(pools["valid"]) == 1
    model = _demo_model(test_config)
    with pytest.raises(AsrError, match=r"the train pool has 4 pair\(s\) from 1 piece.*needs at least "
                                       r"100 distinct pairs.*train list") as err:
        fit(model, pools["train"], pools["valid"], ExperimentPaths(tmp_path / "exp", "t"),
            torch.device("cpu"), QUICK, log=_quiet)
    assert SMALL in str(err.value) and "\n" not in str(err.value)
    # a sound training pool, but a single validation candidate: every MRR would be 1.0
    full = _split(tmp_path / "full.yaml", [LARGE], [LARGE], [LARGE])
    train = load_pools(built_root, full, test_config, kinds=("train",), progress=False)["train"]
    with pytest.raises(AsrError, match=r"the valid pool has 1 pair\(s\).*at least 2"):
        fit(model, train, pools["valid"], ExperimentPaths(tmp_path / "exp", "t"),
            torch.device("cpu"), QUICK, log=_quiet)


def test_evaluation_refuses_a_single_candidate(built_root, tmp_path, test_config):
    from audio_sheet_retrieval.eval.snippet_retrieval import snippet_retrieval

    root = _one_note_root(built_root, tmp_path / "one_note")
    split = _split(tmp_path / "one.yaml", [SMALL], [SMALL], [SMALL])
    config = {**test_config, "TEST_SYNTH": "FluidR3Grand"}
    pool = load_pools(root, split, config, kinds=("test",), progress=False)["test"]
    assert len(pool) == 1
    with pytest.raises(AsrError, match=r"the test pool has 1 pair\(s\).*a ranking"):
        snippet_retrieval(_demo_model(test_config), pool, n_test=10, progress=False)


class _Hang(Exception):
    pass


def _alarm(_signum, _frame):
    raise _Hang


def test_pool_batches_yield_every_pair_even_when_smaller_than_a_batch(built_root):
    prepared = prepare_piece(Piece(built_root, SMALL), ["ElectricPiano"], (1.0, 1.0))
    pool = SnippetPool([prepared])
    n = len(pool)
    assert 50 < n <= 100   # 84 onsets
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)   # the old generator spun forever without yielding
    try:
        whole = next(pool.batches(1000, np.random.default_rng(0), augment=False))
        it = pool.batches(50, np.random.default_rng(0), augment=False)
        first, second, third = next(it), next(it), next(it)
    except _Hang:
        pytest.fail("SnippetPool.batches yielded nothing in 20 s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert len(whole[0]) == n
    # one pass = ceil(n / 50) = 2 batches of nearly equal size, then a new pass
    assert len(first[0]) + len(second[0]) == n and max(len(first[0]), len(second[0])) <= 50
    assert min(len(first[0]), len(second[0])) >= n // 2 - 1 and len(third[0]) <= 50
    spectra = np.concatenate([first[1], second[1]]).reshape(n, -1)
    assert len(np.unique(spectra, axis=0)) == len(np.unique(whole[1].reshape(n, -1), axis=0))


# ------------------------------------------------------------------ training: divergence


@pytest.fixture(scope="module")
def pools(built_root, test_config):
    split = built_root.parent / "faults_train_split.yaml"
    _split(split, [LARGE, SMALL], [LARGE], [SMALL])
    return load_pools(built_root, split, test_config, kinds=("train", "valid"), progress=False)


def test_non_finite_features_stop_training_with_one_line(pools, test_config, tmp_path):
    model = _demo_model(test_config)
    with torch.no_grad():
        model.spec_encoder.dense.weight[0, 0] = float("nan")   # broken weights: NaN features
    paths = ExperimentPaths(tmp_path / "demo", "t")
    with pytest.raises(AsrError, match=r"training diverged at epoch 1 step 1 \(non-finite features "
                                       r"before the CCA layer\)") as err:
        fit(model, pools["train"], pools["valid"], paths, torch.device("cpu"), QUICK, log=_quiet)
    assert str(paths.last_state) in str(err.value) and "\n" not in str(err.value)


def test_refine_cca_keeps_the_refit_correlations(pools, test_config, tmp_path):
    from audio_sheet_retrieval.train.refine import refine_cca

    model = _demo_model(test_config)
    rho = refine_cca(model, pools["train"], n_train=300, progress=False)
    stored = model.projection.stored_correlations
    np.testing.assert_allclose(stored.numpy(), rho, rtol=1e-6)
    assert np.all(rho > 0)
    np.testing.assert_allclose(model.state_dict()["projection.stored_correlations"].numpy(), rho,
                               rtol=1e-6)


# ------------------------------------------------------------------ checkpoints


def test_resume_refuses_a_params_only_file_and_another_models_state(pools, test_config, tmp_path):
    from audio_sheet_retrieval.nn import TwoBranchModel

    paths = ExperimentPaths(tmp_path / "demo", "t")
    paths.folder.mkdir(parents=True)
    model = _demo_model(test_config)
    torch.save({"model": model.state_dict()}, paths.last_state)   # params_*.pt copied over it
    with pytest.raises(AsrError, match="a parameters-only file .* not a training state; --resume") as err:
        fit(model, pools["train"], pools["valid"], paths, torch.device("cpu"), QUICK, resume=True,
            log=_quiet)
    assert str(paths.last_state) in str(err.value) and "\n" not in str(err.value)
    # the training state of another model (another spec), written by a real run
    import dataclasses

    other = TwoBranchModel(dataclasses.replace(model.spec, n_filters=4), test_config)
    fit(other, pools["train"], pools["valid"], paths, torch.device("cpu"), QUICK, log=_quiet,
        record={"model": "small"})
    with pytest.raises(AsrError, match="a checkpoint of model small, not of demo") as err:
        fit(_demo_model(test_config), pools["train"], pools["valid"], paths, torch.device("cpu"),
            QUICK, resume=True, log=_quiet, record={"model": "demo"})
    with pytest.raises(AsrError, match=r"another spec \(n_filters 4 vs 8\)"):
        fit(_demo_model(test_config), pools["train"], pools["valid"], paths, torch.device("cpu"),
            QUICK, resume=True, log=_quiet)
    # an older checkpoint without a description: the state dict itself decides
    state = torch.load(paths.last_state, weights_only=True)
    state.pop("meta")
    torch.save(state, paths.last_state)
    with pytest.raises(AsrError, match="not a training state of this model"):
        fit(_demo_model(test_config), pools["train"], pools["valid"], paths, torch.device("cpu"),
            QUICK, resume=True, log=_quiet)


def _mount_tmpfs(folder: Path, size: str = "64k") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill a disk ({proc.stderr.strip()[:100]}); "
                    "needs root and mount permission")


def _unmount(folder: Path) -> None:
    # lazy: a file left open by a failing writer must not keep the mount alive
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_gives_one_line_and_leaves_no_temporary_file(tmp_path):
    from audio_sheet_retrieval.atomic import write_yaml_atomic
    from audio_sheet_retrieval.train.checkpoint import save_atomic

    disk = tmp_path / "disk"
    _mount_tmpfs(disk)
    try:
        old = disk / "params.pt"
        old.write_bytes(b"previous parameters")
        with pytest.raises(AsrError, match="No space left on device") as err:
            save_atomic({"model": {"w": torch.zeros(100_000)}}, old)
        assert str(old) in str(err.value) and "\n" not in str(err.value)
        assert sorted(p.name for p in disk.iterdir()) == ["params.pt"]   # no temporary file left
        assert old.read_bytes() == b"previous parameters"
        with pytest.raises(AsrError, match="No space left on device"):
            write_yaml_atomic({"ranks": list(range(40_000))}, disk / "results.yaml")
        assert sorted(p.name for p in disk.iterdir()) == ["params.pt"]
    finally:
        _unmount(disk)


def test_run_train_on_a_full_disk_exits_1_with_one_line(built_root, tmp_path):
    split = _split(tmp_path / "s.yaml", [LARGE, SMALL], [LARGE], [SMALL])
    disk = tmp_path / "exp"
    _mount_tmpfs(disk)
    try:
        proc = _script("run_train.py", "--model", "models/demo.py", "--config", "exp_configs/demo.yaml",
                       "--train_split", str(split), "--data_root", str(built_root),
                       "--exp_root", str(disk), "--max_epochs", "1", "--epoch_samples", "100",
                       "--n_valid", "50")
        assert proc.returncode == 1
        line = _one_line(proc)
        assert "No space left on device" in line and str(disk / "demo") in line
        leftovers = [p.name for p in (disk / "demo").iterdir()] if (disk / "demo").exists() else []
        assert not [n for n in leftovers if n.startswith(".")], leftovers
    finally:
        _unmount(disk)


# ------------------------------------------------------------------ splits: digests and overlap


def test_split_digest_is_content_not_order():
    from audio_sheet_retrieval.data.splits import split_digest

    a = split_digest({"train": ["x", "y"], "valid": ["v"], "test": ["t"]})
    assert a == split_digest({"test": ["t"], "valid": ["v"], "train": ["y", "x"], "note": 1})
    assert a != split_digest({"train": ["x"], "valid": ["v"], "test": ["t", "y"]})
    assert len(a) == 40 and int(a, 16) >= 0


def test_checkpoints_and_results_record_the_split_and_evaluation_refuses_overlap(built_root,
                                                                                 tmp_path):
    from audio_sheet_retrieval.data.mutopia import split_provenance
    from audio_sheet_retrieval.data.splits import split_digest

    config_file = REPO / "exp_configs" / "demo.yaml"
    config = load_config(config_file)
    split = _split(tmp_path / "held_out.yaml", [LARGE], [LARGE], [SMALL])
    exp_root = tmp_path / "exp"
    paths = ExperimentPaths.create(exp_root, "demo", split, config_file)
    pools = load_pools(built_root, split, config, kinds=("train", "valid"), progress=False)
    record = {"model": "demo", "config": config, **split_provenance(built_root, split)}
    fit(_demo_model(config), pools["train"], pools["valid"], paths, torch.device("cpu"), QUICK,
        log=_quiet, record=record)
    digest = split_digest(load_split(split))
    for path in (paths.params, paths.best_state, paths.last_state):
        meta = torch.load(path, weights_only=True)["meta"]
        assert meta["split_digest"] == digest and meta["train_pieces"] == [LARGE]
        assert meta["model"] == "demo" and meta["spec"]["n_filters"] == 8
        assert len(meta["data_manifest_sha1"]) == 40
    results = yaml.safe_load(paths.results.read_text())
    assert results["split_digest"] == digest and results["train_pieces"] == [LARGE]

    common = ["run_eval.py", "--model", "models/demo.py", "--config", str(config_file),
              "--data_root", str(built_root), "--exp_root", str(exp_root),
              "--test_synth", "TimGM6mbPiano", "--n_test", "30"]
    # the split it was trained with: the test piece is unseen, the dump records both digests
    proc = _script(*common, "--train_split", str(split), "--dump_results")
    assert proc.returncode == 0, proc.stderr[-3000:]
    dump = yaml.safe_load((paths.folder / "eval_held_out_demo_S2A_1000_TimGM6mbPiano.yaml").read_text())
    assert dump["split_digest"] == digest and dump["params_split_digest"] == digest
    assert dump["train_test_overlap"] == [] and len(dump["data_manifest_sha1"]) == 40
    # a reshuffled split under the trained one's name: its test piece was a training piece
    split.write_text(yaml.safe_dump({"train": [SMALL], "valid": [SMALL], "test": [LARGE, SMALL]}))
    proc = _script(*common, "--train_split", str(split))
    assert proc.returncode == 1
    line = _one_line(proc)
    assert f"1 of its 2 test pieces were training pieces of {paths.params} ({LARGE})" in line
    assert digest[:12] in line
    proc = _script(*common, "--train_split", str(split), "--allow_train_overlap", "--dump_results")
    assert proc.returncode == 0, proc.stderr[-3000:]
    dump = yaml.safe_load((paths.folder / "eval_held_out_demo_S2A_1000_TimGM6mbPiano.yaml").read_text())
    assert dump["train_test_overlap"] == [LARGE] and dump["split_digest"] != digest


# ------------------------------------------------------------------ exit statuses


def test_exit_statuses_usage_2_runtime_1(built_root, tmp_path):
    split = _split(tmp_path / "s.yaml", [LARGE, SMALL], [LARGE], [SMALL])
    common = ["--model", "models/demo.py", "--config", "exp_configs/demo.yaml",
              "--data_root", str(built_root), "--exp_root", str(tmp_path / "exp")]
    usage = [
        ("run_train.py", *common, "--train_split", str(split), "--max_epochs", "0"),
        ("run_train.py", *common, "--train_split", str(split), "--pretrained"),
        ("run_train.py", *common[:2], "--config", "exp_configs/nope.yaml", "--train_split", str(split)),
        ("run_train.py", *common, "--train_split", str(tmp_path / "no_split.yaml")),
        ("run_train.py", *common, "--train_split", str(split), "--device", "tpu7"),
        ("refine_cca.py", *common, "--train_split", str(split), "--n_train", "5"),
        ("run_eval.py", *common, "--train_split", str(split), "--n_test", "1"),
        ("audio_sheet_server.py", *common, "--train_split", str(split), "--k", "0"),
        ("sheet_audio_server.py", *common, "--train_split", str(split), "--n_queries", "0"),
        ("run_train.py", *common, "--train_split", str(split), "--max_epochs", "x"),   # argparse
    ]
    for args in usage:
        proc = _script(*args)
        assert proc.returncode == 2, (args, proc.returncode, proc.stderr[-2000:])
        assert proc.stderr.strip().count("\n") == 0 or proc.stderr.startswith("usage:"), proc.stderr
    # run time: a corrupt data file (NaN in a training spectrogram), a split listing a number
    root = _copy_root(built_root, tmp_path / "bad", pieces=(LARGE, SMALL))
    spec_file = _features(root) / f"{PERF}_spec.npy"
    spec = np.load(spec_file)
    spec[3, 50] = np.nan
    np.save(spec_file, spec)
    numbers = tmp_path / "numbers.yaml"
    numbers.write_text(f"train: [{LARGE}, 42]\nvalid: [{LARGE}]\ntest: [{SMALL}]\n")
    runtime = [
        (["--data_root", str(root), "--train_split", str(split)], f"{spec_file}: spectrogram holds NaN"),
        (["--data_root", str(built_root), "--train_split", str(numbers)], "42"),
    ]
    for extra, message in runtime:
        proc = _script("run_train.py", *common[:4], "--exp_root", str(tmp_path / "exp"), *extra,
                       "--max_epochs", "1", "--epoch_samples", "100", "--n_valid", "50")
        assert proc.returncode == 1, (extra, proc.returncode, proc.stderr[-2000:])
        line = _one_line(proc)
        assert message in line and ("piece name" in line or "NaN" in line)


# ------------------------------------------------------------------ BL2's audio batch norm


def test_bl2_normalises_the_audio_latent_map_and_the_shipped_bl2_still_loads(test_config):
    from audio_sheet_retrieval import pretrained

    for name in ("mutopia_ccal_cont_rsz_dense", "mutopia_ccal_cont_rsz_dense_att",
                 "mutopia_lccal_cont_rsz_dense_att"):
        model = load_model_module(REPO / "models" / f"{name}.py").build_model(test_config)
        audio, sheet = model.spec_encoder, model.sheet_encoder
        assert isinstance(audio.norm, torch.nn.BatchNorm2d) and audio.to_latent.bias is None
        assert sheet.norm is None and sheet.to_latent.bias is not None   # as the original
        model.train()
        sheets = torch.randint(0, 256, (8, 160, 200), dtype=torch.uint8)
        specs = torch.rand(8, 92, 42)
        z1, z2 = model(model.prepare_sheet(sheets), model.prepare_spec(specs))
        model.loss(z1, z2).backward()
        assert audio.norm.weight.grad is not None and torch.isfinite(audio.norm.weight.grad).all()
    # the shipped BL2 / +Att were trained without it: their meta selects the spec they had
    for name in ("mutopia_ccal_cont_rsz_dense", "mutopia_ccal_cont_rsz_dense_att"):
        if name not in pretrained.available():
            continue
        model, _, meta = pretrained.load_pretrained(name)
        assert meta["spec"] == {"audio_dense_norm": False} and model.spec_encoder.norm is None


def test_shipped_models_refuse_test_pieces_they_were_trained_on(built_root, tmp_path):
    """A shipped model's meta.yaml names its training pieces; bwv259 is one of them."""
    from audio_sheet_retrieval import pretrained

    for name in pretrained.available():
        assert "bach__bwv259" in pretrained.pretrained_meta(name)["train_pieces"], name
    root = _copy_root(built_root, tmp_path / "root", pieces=("bach__bwv259", LARGE))
    split = _split(tmp_path / "split.yaml", [], [], ["bach__bwv259", LARGE])
    proc = _script("run_eval.py", "--model", "models/demo.py", "--pretrained", "--train_split",
                   str(split), "--data_root", str(root), "--exp_root", str(tmp_path / "exp"),
                   "--test_synth", "TimGM6mbPiano", "--n_test", "50")
    assert proc.returncode == 1
    assert "bach__bwv259" in _one_line(proc) and "training" in _one_line(proc)

"""Training on real built data: it learns, resumes exactly, and refine_cca helps or keeps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from audio_sheet_retrieval.config.exp_config import validate_config
from audio_sheet_retrieval.data.mutopia import load_pools
from audio_sheet_retrieval.nn.module_loader import load_model_module
from audio_sheet_retrieval.train.experiment import ExperimentPaths
from audio_sheet_retrieval.train.loop import TrainOptions, evaluate_pairs, fit, validation_pairs
from audio_sheet_retrieval.train.refine import fit_cca, refine_cca

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def train_setup(built_root):
    """Train on both pieces with one piano; validate on an unseen synth (electric piano)."""
    config = validate_config({
        "SHEET_CONTEXT": 200, "STAFF_HEIGHT": 160, "SPEC_CONTEXT": 42, "SPEC_BINS": 92, "FPS": 20,
        "AUGMENT": {"system_translation": 5, "sheet_scaling": [0.95, 1.05], "onset_translation": 1,
                    "synths": ["FluidR3Grand", "TimGM6mbPiano"], "tempo_range": [1.0, 1.1]},
        "VALID_SYNTH": "ElectricPiano", "TEST_SYNTH": "ElectricPiano", "TEST_TEMPO": 1.0})
    split = built_root / "splits" / "train_test.yaml"
    split.write_text(yaml.safe_dump({"train": ["bach__bwv846", "bach__bwv259"],
                                     "valid": ["bach__bwv846"], "test": ["bach__bwv259"]}))
    pools = load_pools(built_root, split, config, kinds=("train", "valid"), progress=False)
    return config, pools


def _model(config):
    torch.manual_seed(0)
    return load_model_module(REPO / "models" / "demo.py").build_model(config)


def test_training_lowers_loss_and_lifts_mrr(train_setup, tmp_path):
    config, pools = train_setup
    model = _model(config)
    paths = ExperimentPaths(tmp_path / "demo", "t")
    sheets, specs = validation_pairs(pools["valid"], 300)
    _, mrr_before = evaluate_pairs(model, sheets, specs, 100)
    state = fit(model, pools["train"], pools["valid"], paths, torch.device("cpu"),
                TrainOptions(epoch_samples=1500, n_valid=300, max_epochs=4), log=lambda _: None)
    losses = [h["train_loss"] for h in state.history]
    chance = np.mean(1.0 / np.arange(1, 301))  # MRR of a random ranking of 300 candidates
    assert losses[-1] < losses[0]
    assert state.best_mrr > 4 * chance and state.best_mrr > 2 * mrr_before
    assert paths.params.is_file() and paths.results.is_file() and paths.curves_png.is_file()
    loaded = torch.load(paths.params, weights_only=True)
    assert set(loaded) == {"model", "meta"} and loaded["meta"]["spec"]["n_filters"] == 8


def test_resume_gives_the_same_state(train_setup, tmp_path):
    config, pools = train_setup
    options = TrainOptions(epoch_samples=200, n_valid=100, max_epochs=2)
    full = _model(config)
    fit(full, pools["train"], pools["valid"], ExperimentPaths(tmp_path / "a", "t"),
        torch.device("cpu"), options, log=lambda _: None)
    part = _model(config)
    paths = ExperimentPaths(tmp_path / "b", "t")
    fit(part, pools["train"], pools["valid"], paths, torch.device("cpu"),
        TrainOptions(epoch_samples=200, n_valid=100, max_epochs=1), log=lambda _: None)
    resumed = _model(config)  # a fresh process would start like this
    state = fit(resumed, pools["train"], pools["valid"], paths, torch.device("cpu"), options,
                resume=True, log=lambda _: None)
    assert state.epoch == 2
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_refine_cca_improves_or_keeps_mrr(train_setup, tmp_path):
    config, pools = train_setup
    model = _model(config)
    fit(model, pools["train"], pools["valid"], ExperimentPaths(tmp_path / "r", "t"),
        torch.device("cpu"), TrainOptions(epoch_samples=1500, n_valid=300, max_epochs=2),
        log=lambda _: None)
    sheets, specs = validation_pairs(pools["valid"], 300)
    _, before = evaluate_pairs(model, sheets, specs, 100)  # projection refitted on 2,000 pairs
    rho = refine_cca(model, pools["train"], n_train=10000)
    _, after = evaluate_pairs(model, sheets, specs, 100)
    assert np.all(np.diff(rho) <= 1e-9) and 0 < rho[0] <= 1
    assert after >= before - 0.01, (before, after)


def test_fit_cca_recovers_correlation():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5000, 2))
    h1 = np.c_[z[:, 0], rng.normal(size=5000), z[:, 1]] @ rng.normal(size=(3, 3))
    h2 = np.c_[0.9 * z[:, 0] + 0.1 * rng.normal(size=5000), rng.normal(size=5000),
               0.5 * z[:, 1] + rng.normal(size=5000)] @ rng.normal(size=(3, 3))
    m1, m2, u, v, rho = fit_cca(h1, h2)
    p1, p2 = (h1 - m1) @ u, (h2 - m2) @ v
    corr = [np.corrcoef(p1[:, k], p2[:, k])[0, 1] for k in range(3)]
    np.testing.assert_allclose(corr, rho, atol=0.02)
    assert rho[0] > 0.98 and rho[2] < 0.05


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def test_bad_training_input_is_one_line(built_root, tmp_path):
    split = built_root / "splits" / "all_split.yaml"
    common = ["--train_split", str(split), "--data_root", str(built_root), "--exp_root", str(tmp_path)]
    proc = _script("run_train.py", "--model", "models/nope.py", "--config", "exp_configs/demo.yaml", *common)
    assert proc.returncode == 2 and "models/nope.py" in proc.stderr and proc.stderr.count("\n") == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("SHEET_CONTEXT: 200\n")
    proc = _script("run_train.py", "--model", "models/demo.py", "--config", str(bad), *common)
    assert proc.returncode == 1 and "missing key" in proc.stderr and proc.stderr.count("\n") == 1
    empty = tmp_path / "empty.yaml"
    empty.write_text("train: []\nvalid: []\ntest: [bach__bwv259]\n")
    proc = _script("run_train.py", "--model", "models/demo.py", "--config", "exp_configs/demo.yaml",
                   "--train_split", str(empty), "--data_root", str(built_root), "--exp_root", str(tmp_path))
    assert proc.returncode == 1 and "train list is empty" in proc.stderr
    proc = _script("run_train.py", "--model", "models/demo.py", "--config", "exp_configs/demo.yaml",
                   "--device", "cuda0", *common)
    if not torch.cuda.is_available():
        assert proc.returncode == 2 and "CUDA is not available" in proc.stderr

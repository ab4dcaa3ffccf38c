"""The main job in one command: build -> train -> refine -> evaluate -> identify -> report.

Every step runs one of the project's own scripts (the same ones a user runs)
and is skipped when its output already exists, so a re-run reuses what is
built. The quick variant evaluates the shipped model on its held-out test
pieces instead of training.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from audio_sheet_retrieval.data.splits import write_split
from audio_sheet_retrieval.errors import AsrError

REPO = Path(__file__).resolve().parents[1]


def run(args: list[str], log) -> None:
    """Run one project script with this interpreter; a failure stops the demo with its message."""
    log(f"$ {' '.join(args)}")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=REPO)
    if proc.returncode != 0:
        raise AsrError(f"step failed ({' '.join(args[:1])}, exit {proc.returncode}); see its message above")
    log(f"  done in {time.perf_counter() - t:.0f} s")


def _eval_steps(common: list[str], extra: list[str], log) -> None:
    for direction in ([], ["--V2_to_V1"]):
        run(["run_eval.py", *common, *extra, "--dump_results", "--n_test", "2000", *direction], log)
    run(["audio_sheet_server.py", *common, *extra, "--full_eval", "--init_sheet_db", "--dump_results"], log)
    run(["sheet_audio_server.py", *common, *extra, "--full_eval", "--init_audio_db", "--dump_results"], log)


def run_demo(data_root: Path, exp_root: Path, out: Path, device: str = "cpu", minutes: float = 10.0,
             jobs: int = 2, log=print) -> Path:
    """Train the demo model on the demo data set and report on it."""
    split = data_root / "splits" / "all_split.yaml"
    # always run the builder: it skips complete pieces of the current data format in seconds and
    # rebuilds stale ones (an old root is brought up to date, never mixed)
    run(["build_dataset.py", "--demo", "--root", str(data_root), "--jobs", str(jobs)], log)
    common = ["--model", "models/demo.py", "--data", "mutopia", "--config", "exp_configs/demo.yaml",
              "--train_split", str(split), "--data_root", str(data_root), "--exp_root", str(exp_root),
              "--device", device]
    params = exp_root / "demo" / "params_all_split_demo.pt"
    if not params.is_file():
        run(["run_train.py", *common, "--max_minutes", str(minutes)], log)
    if not (exp_root / "demo_est_UV" / params.name).is_file():
        run(["refine_cca.py", *common, "--n_train", "10000"], log)
    _eval_steps(common, ["--estimate_UV"], log)
    return _report(out, [exp_root / "demo", exp_root / "demo_est_UV"], common, ["--estimate_UV"],
                   "Demo: models/demo.py trained on the demo data set (CPU)")


def run_quick(data_root: Path, exp_root: Path, out: Path, device: str = "cpu", jobs: int = 2,
              model: str | None = None, log=print) -> Path:
    """Evaluate a shipped model on the held-out test pieces of its training split."""
    from audio_sheet_retrieval import pretrained

    name = model or pretrained.DEFAULT_MODEL
    meta = pretrained.pretrained_meta(name)
    synth, tempo = meta["config"]["TEST_SYNTH"], meta["config"]["TEST_TEMPO"]
    run(["build_dataset.py", "--root", str(data_root), "--jobs", str(jobs), "--synths", synth,
         "--tempi", str(tempo), "--pieces", *meta["test_sources"]], log)
    split = write_split({"train": [], "valid": [], "test": meta["test_pieces"]},
                        data_root / "splits" / "pretrained_test_split.yaml")
    common = ["--model", meta["model_file"], "--data", "mutopia", "--train_split", str(split),
              "--data_root", str(data_root), "--exp_root", str(exp_root), "--device", device,
              "--pretrained"]
    _eval_steps(common, [], log)
    return _report(out, [exp_root / f"{name}_pretrained"], common, [],
                   f"Shipped model {name} on its held-out test pieces")


def _report(out: Path, folders: list[Path], common: list[str], extra: list[str], title: str) -> Path:
    """Load the evaluated model and its test pool, and write the report folder."""
    import argparse

    from audio_sheet_retrieval.data.mutopia import load_pools
    from audio_sheet_retrieval.eval.report import write_report
    from audio_sheet_retrieval.scripts import experiment_parser, setup_experiment
    from audio_sheet_retrieval.train.checkpoint import load_model_state

    parser = experiment_parser("report")
    parser.add_argument("--estimate_UV", action="store_true")
    args: argparse.Namespace = parser.parse_args(common + extra)
    exp = setup_experiment(args, estimate_uv=args.estimate_UV, evaluating=True)
    load_model_state(exp.model, exp.paths.params)
    pool = load_pools(exp.data_root, exp.split_file, exp.config, kinds=("test",))["test"]
    return write_report(out, folders, exp.model, pool, title)

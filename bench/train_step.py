#!/usr/bin/env python
"""Benchmark of a training step for every model file, at batch 100.

For each ``models/*.py``: training pairs/s of the whole step (sampling the
augmented pairs from the train pool + forward + backward + Adam) and of the
same network's forward+backward+Adam alone on pairs sampled beforehand, so
the ratio shows what the data pipeline costs; and the peak memory (resident
set size of a fresh process per model, or CUDA peak allocation on a GPU).
Writes ``bench/results/train_step.json``.

Usage::

    python bench/train_step.py --data_root data/msmd --split data/msmd/splits/demo_split.yaml
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def measure_one(args) -> dict:
    """Time one model in this process (called in a subprocess per model)."""
    import numpy as np
    import torch

    from audio_sheet_retrieval.config.exp_config import load_config
    from audio_sheet_retrieval.data.mutopia import load_pools
    from audio_sheet_retrieval.nn.module_loader import load_model_module
    from audio_sheet_retrieval.train.experiment import parse_device
    from bench.common import median_seconds

    device = parse_device(args.device)
    config = load_config(args.config)
    module = load_model_module(args.one)
    config = dict(config, SPEC_CONTEXT=84) if module.SPEC.attention and args.att_context else config
    model = module.build_model(config).to(device)
    pool = load_pools(args.data_root, args.split, config, kinds=("train",), progress=False)["train"]
    optimizer = model.make_optimizer()
    rng = np.random.default_rng(0)
    batch = 100

    def step(sheets, specs):
        z1, z2 = model(model.prepare_sheet(sheets).to(device), model.prepare_spec(specs).to(device))
        loss = model.loss(z1, z2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    def full_step():
        sheets, specs = pool.pairs(rng.integers(0, len(pool), batch), augment=True, rng=rng)
        step(sheets, specs)

    fixed = pool.pairs(rng.integers(0, len(pool), batch), augment=True, rng=rng)
    sample_only = median_seconds(lambda: pool.pairs(rng.integers(0, len(pool), batch), augment=True,
                                                    rng=rng), args.repeats)
    step(*fixed)  # warm-up
    t_full = median_seconds(full_step, args.repeats)
    t_net = median_seconds(lambda: step(*fixed), args.repeats)
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"model": Path(args.one).stem, "parameters": model.n_parameters(),
            "spec_context": config["SPEC_CONTEXT"],
            "train_pairs_per_s": round(batch / t_full, 1),
            "net_only_pairs_per_s": round(batch / t_net, 1),
            "sampling_pairs_per_s": round(batch / sample_only, 1),
            "data_pipeline_share": round(1 - t_net / t_full, 3),
            "step_s_median": round(t_full, 3), "peak_memory_mib": round(peak, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_root", default=str(REPO / "data" / "msmd"))
    p.add_argument("--split", default=None, help="default: <data_root>/splits/demo_split.yaml")
    p.add_argument("--config", default=str(REPO / "exp_configs" / "full_aug.yaml"))
    p.add_argument("--models", nargs="+", default=sorted(str(m) for m in (REPO / "models").glob("*.py")))
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--att_context", action="store_true", help="run attention models at 84 frames")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    args.split = args.split or str(Path(args.data_root) / "splits" / "demo_split.yaml")
    if args.one:
        print(json.dumps(measure_one(args)))
        return
    from bench.common import write_json

    rows = []
    for model in args.models:
        t = time.perf_counter()
        cmd = [sys.executable, __file__, "--one", model, "--data_root", args.data_root, "--split",
               args.split, "--config", args.config, "--device", args.device, "--repeats", str(args.repeats)]
        out = subprocess.run(cmd + (["--att_context"] if args.att_context else []),
                             capture_output=True, text=True)
        if out.returncode != 0:
            rows.append({"model": Path(model).stem, "error": out.stderr.strip().splitlines()[-1:]})
        else:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], f"({time.perf_counter() - t:.0f} s)")
    path = write_json("train_step", {"device": args.device, "batch_size": 100, "config": args.config,
                                     "models": rows}, args.out)
    print(path)


if __name__ == "__main__":
    main()

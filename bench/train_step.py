#!/usr/bin/env python
"""Benchmark of a training step for every model file and config, at batch 100.

For each ``models/*.py`` and each ``--configs`` file: training pairs/s of the
whole step (sampling the augmented pairs from the train pool + forward +
backward + Adam) and of the same network's forward+backward+Adam alone on
pairs sampled beforehand, timed in interleaved rounds; ``data_pipeline_share``
is the fraction of a step spent producing its batch when both run one after
the other, ``sampling / (sampling + network)`` of the medians; and the peak
memory (resident set size of a fresh process per model, or CUDA peak
allocation on a GPU). With ``--workers``, the loop's own
batch source (:func:`~audio_sheet_retrieval.train.loop.epoch_batches`) feeds
the step from that many worker processes: ``loader_share`` is the median time
the step waits for its batch over the median whole step.
Writes ``bench/results/train_step.json``.

Usage::

    python bench/train_step.py --data_root data/msmd --split data/msmd/splits/demo_split.yaml \
        --models models/demo.py --configs exp_configs/full_aug.yaml exp_configs/world_aug.yaml --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
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
    from audio_sheet_retrieval.train.loop import EpochBatches, epoch_batches

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

    def sample():
        return pool.pairs(rng.integers(0, len(pool), batch), augment=True, rng=rng)

    fixed = sample()
    step(*fixed)  # warm-up
    times: dict[str, list[float]] = {"sampling": [], "net": [], "full": []}
    for _ in range(args.repeats):  # interleaved: a change of machine load hits all three alike
        for name, fn in (("sampling", sample), ("net", lambda: step(*fixed)),
                         ("full", lambda: step(*sample()))):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    t_sample, t_net, t_full = (statistics.median(times[k]) for k in ("sampling", "net", "full"))
    row = {"model": Path(args.one).stem, "config": Path(args.config).stem,
           "parameters": model.n_parameters(), "spec_context": config["SPEC_CONTEXT"],
           "torch_threads": torch.get_num_threads(),
           "train_pairs_per_s": round(batch / t_full, 1),
           "net_only_pairs_per_s": round(batch / t_net, 1),
           "sampling_pairs_per_s": round(batch / t_sample, 1),
           "sampling_s_median": round(t_sample, 4), "net_s_median": round(t_net, 4),
           "data_pipeline_share": round(t_sample / (t_sample + t_net), 3),
           "step_s_median": round(t_full, 3)}
    for workers in args.workers:
        steps = args.repeats + 2 * workers + 2  # the first batches fill the workers' queues
        order = rng.integers(0, len(pool), steps * batch)
        source = epoch_batches(EpochBatches(pool, order, batch, 0, 0), workers)
        waits, totals = [], []
        for _ in range(steps):
            t = time.perf_counter()
            sheets, specs = next(source)
            waited = time.perf_counter() - t
            step(sheets, specs)
            waits.append(waited)
            totals.append(time.perf_counter() - t)
        waits, totals = waits[-args.repeats:], totals[-args.repeats:]
        row[f"loader_{workers}_workers"] = {
            "wait_s_median": round(statistics.median(waits), 4),
            "step_s_median": round(statistics.median(totals), 4),
            "loader_share": round(statistics.median(waits) / statistics.median(totals), 3)}
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {**row, "peak_memory_mib": round(peak, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_root", default=str(REPO / "data" / "msmd"))
    p.add_argument("--split", default=None, help="default: <data_root>/splits/demo_split.yaml")
    p.add_argument("--configs", nargs="+", default=[str(REPO / "exp_configs" / f"{name}.yaml")
                                                    for name in ("full_aug", "world_aug")])
    p.add_argument("--config", default=None, help=argparse.SUPPRESS)
    p.add_argument("--workers", nargs="*", type=int, default=[],
                   help="also time the loop's batch source with these numbers of worker processes")
    p.add_argument("--models", nargs="+", default=sorted(str(m) for m in (REPO / "models").glob("*.py")))
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--att_context", action="store_true", help="run attention models at 84 frames")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    args.split = args.split or str(Path(args.data_root) / "splits" / "demo_split.yaml")
    if args.one:
        args.config = args.config or args.configs[0]
        print(json.dumps(measure_one(args)))
        return
    from bench.common import write_json

    rows = []
    for config in [args.config] if args.config else args.configs:
        for model in args.models:
            t = time.perf_counter()
            cmd = [sys.executable, __file__, "--one", model, "--data_root", args.data_root, "--split",
                   args.split, "--config", config, "--device", args.device, "--repeats",
                   str(args.repeats), "--workers", *map(str, args.workers)]
            out = subprocess.run(cmd + (["--att_context"] if args.att_context else []),
                                 capture_output=True, text=True)
            if out.returncode != 0:
                rows.append({"model": Path(model).stem, "config": Path(config).stem,
                             "error": out.stderr.strip().splitlines()[-1:]})
            else:
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], f"({time.perf_counter() - t:.0f} s)")
    path = write_json("train_step", {"device": args.device, "batch_size": 100, "configs": args.configs,
                                     "repeats": args.repeats, "workers": args.workers,
                                     "threads": os.environ.get("OMP_NUM_THREADS"),
                                     "models": rows}, args.out)
    print(path)


if __name__ == "__main__":
    main()

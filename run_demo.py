#!/usr/bin/env python
"""The main job: build the demo data, train, refine, evaluate both ways, identify pieces, report.

Examples::

    python run_demo.py                      # about 20 minutes on 2 CPU cores
    python run_demo.py --device cuda0       # the same on a GPU
    python run_demo.py --quick              # evaluate the shipped model on its held-out test pieces
"""

import argparse
from pathlib import Path

from audio_sheet_retrieval.errors import run_cli


def main() -> int:
    from audio_sheet_retrieval.demo import REPO, run_demo, run_quick

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="evaluate the shipped model, no training")
    p.add_argument("--device", default="cpu", help="cpu, cuda0, ...")
    p.add_argument("--minutes", type=float, default=10.0, help="training budget in minutes")
    p.add_argument("--jobs", type=int, default=2, help="processes for the data build")
    p.add_argument("--data_root", default=None, help="default: data/msmd_demo (or data/msmd_pretrained_test)")
    p.add_argument("--exp_root", default=None, help="default: experiments/demo")
    p.add_argument("--out", default=None, help="report folder (default: reports/demo or reports/quick)")
    args = p.parse_args()
    exp_root = Path(args.exp_root or REPO / "experiments" / "demo")
    if args.quick:
        report = run_quick(Path(args.data_root or REPO / "data" / "msmd_pretrained_test"), exp_root,
                           Path(args.out or REPO / "reports" / "quick"), args.device, args.jobs)
    else:
        report = run_demo(Path(args.data_root or REPO / "data" / "msmd_demo"), exp_root,
                          Path(args.out or REPO / "reports" / "demo"), args.device, args.minutes, args.jobs)
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    run_cli(main)

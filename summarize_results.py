#!/usr/bin/env python
"""Collect the dumped results of model folders into one Markdown table.

Reads eval_*.yaml (snippet retrieval, run_eval.py --dump_results) and retrieval_*.yaml (piece
identification, *_server.py --full_eval --dump_results); one row per model x config x direction
x test condition, with R@1, R@5, R@25 (%), MRR, MedR and the piece-ID top-1 / top-5 ratios (%).

Example::

    python summarize_results.py experiments/mutopia_ccal_cont_rsz_dense_est_UV --out table.md
"""

from audio_sheet_retrieval.errors import run_cli


def main() -> int:
    import argparse

    from audio_sheet_retrieval.atomic import write_text_atomic
    from audio_sheet_retrieval.eval.summary import results_table

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", metavar="MODEL_FOLDER",
                   help="EXP_ROOT/<model>[_est_UV] folders holding dumped results")
    p.add_argument("--out", default=None, help="also write the table to this Markdown file")
    args = p.parse_args()
    table = results_table(args.folders)
    print(table)
    if args.out:
        print(f"wrote {write_text_atomic(table + chr(10), args.out)}")
    return 0


if __name__ == "__main__":
    run_cli(main)

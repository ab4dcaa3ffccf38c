#!/usr/bin/env python
"""Performance identification from a score: which test recording plays a score? (S2A piece retrieval)

A database holds one spectrogram excerpt per onset of every test piece's TEST_SYNTH performance.
A query score (unrolled into one strip) is cut into --n_queries evenly spaced 160 x 200 windows;
each window's --k nearest excerpts vote for their piece, and pieces are ranked by votes.

Examples::

    python sheet_audio_server.py --model models/demo.py --data mutopia \
        --train_split data/msmd/splits/all_split.yaml --config exp_configs/demo.yaml \
        --estimate_UV --init_audio_db --full_eval --dump_results
    python sheet_audio_server.py --model models/demo.py --config exp_configs/demo.yaml \
        --estimate_UV --query page1.png page2.png
"""

from audio_sheet_retrieval.errors import run_cli


def main() -> int:
    from audio_sheet_retrieval.eval.piece_id import add_server_arguments, run_piece_id, server_options
    from audio_sheet_retrieval.scripts import add_overlap_argument, experiment_parser, setup_experiment

    p = experiment_parser(__doc__.split("\n\n")[0])
    add_server_arguments(p, "S2A")
    add_overlap_argument(p)
    args = p.parse_args()
    exp = setup_experiment(args, estimate_uv=args.estimate_UV, evaluating=True)
    run_piece_id(exp, args.config, server_options(args, "S2A"))
    return 0


if __name__ == "__main__":
    run_cli(main)

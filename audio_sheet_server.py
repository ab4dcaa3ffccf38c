#!/usr/bin/env python
"""Score identification from audio: which test piece does a recording play? (A2S piece retrieval)

A database holds one sheet snippet per aligned onset of every test piece. A query recording
is cut into --n_queries evenly spaced excerpts; each excerpt's --k nearest snippets vote for
their piece, and pieces are ranked by votes.

Examples::

    python audio_sheet_server.py --model models/demo.py --data mutopia \
        --train_split data/msmd/splits/all_split.yaml --config exp_configs/demo.yaml \
        --estimate_UV --init_sheet_db --full_eval --dump_results
    python audio_sheet_server.py --model models/demo.py --config exp_configs/demo.yaml \
        --estimate_UV --query my_recording.flac
"""

from audio_sheet_retrieval.errors import run_cli


def main() -> int:
    from audio_sheet_retrieval.eval.piece_id import add_server_arguments, run_piece_id, server_options
    from audio_sheet_retrieval.scripts import add_overlap_argument, experiment_parser, setup_experiment

    p = experiment_parser(__doc__.split("\n\n")[0])
    add_server_arguments(p, "A2S")
    add_overlap_argument(p)
    args = p.parse_args()
    exp = setup_experiment(args, estimate_uv=args.estimate_UV, evaluating=True)
    run_piece_id(exp, args.config, server_options(args, "A2S"))
    return 0


if __name__ == "__main__":
    run_cli(main)

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
    from audio_sheet_retrieval.eval.piece_id import PieceIdOptions, run_piece_id
    from audio_sheet_retrieval.scripts import experiment_parser, setup_experiment

    p = experiment_parser(__doc__.split("\n\n")[0])
    p.add_argument("--estimate_UV", action="store_true",
                   help="use the refined-CCA parameters (refine_cca.py)")
    p.add_argument("--init_audio_db", action="store_true",
                   help="(re)build the cached audio-excerpt database of the test performances")
    p.add_argument("--full_eval", action="store_true",
                   help="identify every test piece's performance from its unrolled score")
    p.add_argument("--dump_results", action="store_true",
                   help="with --full_eval: write retrieval_<tag>_S2A.yaml beside the parameters")
    p.add_argument("--query", nargs="+", default=None, metavar="FILE",
                   help="score page image(s) of one piece, in page order (PNG, JPEG)")
    p.add_argument("--n_queries", type=int, default=100, help="score windows per query (100)")
    p.add_argument("--k", type=int, default=25, help="nearest excerpts voting per window (25)")
    p.add_argument("--top", type=int, default=10, help="pieces listed for --query")
    p.add_argument("--test_synth", default=None, help="override the config's TEST_SYNTH")
    p.add_argument("--test_tempo", type=float, default=None, help="override the config's TEST_TEMPO")
    args = p.parse_args()
    exp = setup_experiment(args, estimate_uv=args.estimate_UV, evaluating=True)
    options = PieceIdOptions("S2A", args.n_queries, args.k, args.init_audio_db, args.full_eval,
                             args.dump_results, tuple(args.query or ()),
                             args.test_synth, args.test_tempo, args.top)
    run_piece_id(exp, args.config, options)
    return 0


if __name__ == "__main__":
    run_cli(main)

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
    from audio_sheet_retrieval.eval.piece_id import PieceIdOptions, run_piece_id
    from audio_sheet_retrieval.scripts import experiment_parser, setup_experiment

    p = experiment_parser(__doc__.split("\n\n")[0])
    p.add_argument("--estimate_UV", action="store_true",
                   help="use the refined-CCA parameters (refine_cca.py)")
    p.add_argument("--init_sheet_db", action="store_true",
                   help="(re)build the cached sheet-snippet database of the test pieces")
    p.add_argument("--full_eval", action="store_true",
                   help="identify every test piece from its TEST_SYNTH recording")
    p.add_argument("--dump_results", action="store_true",
                   help="with --full_eval: write retrieval_<tag>_A2S.yaml beside the parameters")
    p.add_argument("--query", default=None, metavar="FILE",
                   help="a recording to identify (WAV, FLAC, OGG, MP3)")
    p.add_argument("--n_queries", type=int, default=100, help="excerpts per recording (100)")
    p.add_argument("--k", type=int, default=25, help="nearest snippets voting per excerpt (25)")
    p.add_argument("--top", type=int, default=10, help="pieces listed for --query")
    p.add_argument("--test_synth", default=None, help="override the config's TEST_SYNTH")
    p.add_argument("--test_tempo", type=float, default=None, help="override the config's TEST_TEMPO")
    args = p.parse_args()
    exp = setup_experiment(args, estimate_uv=args.estimate_UV, evaluating=True)
    options = PieceIdOptions("A2S", args.n_queries, args.k, args.init_sheet_db, args.full_eval,
                             args.dump_results, (args.query,) if args.query else (),
                             args.test_synth, args.test_tempo, args.top)
    run_piece_id(exp, args.config, options)
    return 0


if __name__ == "__main__":
    run_cli(main)

#!/usr/bin/env python
"""Evaluate snippet retrieval: rank each test pair's partner among n_test evenly spaced test pairs.

Sheet snippets query audio excerpts (S2A) by default; --V2_to_V1 queries sheets with audio (A2S).
With --dump_results, writes eval_<tag>_<S2A|A2S>_<tempo x 1000>.yaml, ..._ranks.csv and
..._ranks.png beside the parameters.

Example::

    python run_eval.py --model models/demo.py --data mutopia \
        --train_split data/msmd/splits/all_split.yaml --config exp_configs/demo.yaml \
        --estimate_UV --dump_results --n_test 2000
"""

from audio_sheet_retrieval.errors import run_cli


def main() -> int:
    from pathlib import Path

    from audio_sheet_retrieval.errors import UsageError
    from audio_sheet_retrieval.scripts import add_overlap_argument, experiment_parser, setup_experiment

    p = experiment_parser(__doc__.split("\n\n")[0])
    p.add_argument("--estimate_UV", action="store_true",
                   help="evaluate the refined-CCA parameters (refine_cca.py)")
    p.add_argument("--V2_to_V1", action="store_true",
                   help="audio queries retrieve sheet snippets (A2S); default: sheet -> audio (S2A)")
    p.add_argument("--n_test", type=int, default=2000, help="evenly spaced test pairs (default 2000)")
    p.add_argument("--dump_results", action="store_true",
                   help="write the YAML, ranks CSV and histogram PNG beside the parameters")
    p.add_argument("--test_synth", default=None, help="override the config's TEST_SYNTH")
    p.add_argument("--test_tempo", type=float, default=None, help="override the config's TEST_TEMPO")
    p.add_argument("--batch_size", type=int, default=256, help="pairs embedded at a time")
    add_overlap_argument(p)
    args = p.parse_args()
    if args.n_test < 2:
        raise UsageError(f"--n_test must be >= 2 (a ranking needs candidates), got {args.n_test}")
    if args.batch_size < 1:
        raise UsageError(f"--batch_size must be >= 1, got {args.batch_size}")
    exp = setup_experiment(args, estimate_uv=args.estimate_UV, evaluating=True)

    from audio_sheet_retrieval.data.mutopia import load_pools
    from audio_sheet_retrieval.eval.snippet_retrieval import (
        dump_snippet_results,
        snippet_retrieval,
        with_test_conditions,
    )
    from audio_sheet_retrieval.eval.summary import eval_stem, markdown_table
    from audio_sheet_retrieval.nn.module_loader import model_name
    from audio_sheet_retrieval.train.checkpoint import load_model_state

    ckpt = load_model_state(exp.model, exp.paths.params, exp.name)
    provenance = exp.evaluation_provenance(ckpt, args.allow_train_overlap)
    config = with_test_conditions(exp.config, args.test_synth, args.test_tempo)
    synth, tempo = config["TEST_SYNTH"], float(config["TEST_TEMPO"])
    pool = load_pools(exp.data_root, exp.split_file, config, kinds=("test",))["test"]
    direction = "A2S" if args.V2_to_V1 else "S2A"
    result = snippet_retrieval(exp.model, pool, args.n_test, direction, args.batch_size)
    m = result.metrics
    print(f"{direction} snippet retrieval: {m['n']} of {len(pool)} test pairs from "
          f"{len(pool.pieces)} pieces, {synth} at tempo {tempo:g}, parameters {exp.paths.params}")
    print(markdown_table([{"direction": direction, **m}],
                         ("direction", "R@1", "R@5", "R@10", "R@25", "MRR", "MedR", "MeanR",
                          "mean_dist", "n")))
    if args.dump_results:
        stem = eval_stem(exp.paths.tag, direction, tempo,
                         synth if synth != exp.config["TEST_SYNTH"] else None)
        meta = {"model": model_name(args.model), "estimate_UV": bool(args.estimate_UV),
                "config": Path(args.config).stem, "split": exp.split_file.stem,
                "test_synth": synth, "test_tempo": tempo, **provenance}
        for path in dump_snippet_results(result, exp.paths.folder, stem, meta):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)

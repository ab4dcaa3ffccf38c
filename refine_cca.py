#!/usr/bin/env python
"""Refit a trained model's CCA layer on one large batch of training pairs.

Writes ``EXP_ROOT/<model>_est_UV/params_<tag>.pt``, which ``--estimate_UV`` loads.

Example::

    python refine_cca.py --model models/demo.py --data mutopia \
        --train_split data/msmd/splits/all_split.yaml --config exp_configs/demo.yaml --n_train 25000
"""

from audio_sheet_retrieval.errors import run_cli


def main() -> int:
    from audio_sheet_retrieval.data.mutopia import load_pools
    from audio_sheet_retrieval.scripts import experiment_parser, setup_experiment
    from audio_sheet_retrieval.train.checkpoint import load_model_state, save_atomic
    from audio_sheet_retrieval.train.loop import evaluate_pairs, validation_pairs
    from audio_sheet_retrieval.train.refine import refine_cca

    p = experiment_parser(__doc__.split("\n\n")[0])
    p.add_argument("--n_train", type=int, default=25_000, help="training pairs for the CCA fit")
    p.add_argument("--n_valid", type=int, default=1_000, help="validation pairs for the check")
    args = p.parse_args()
    if args.pretrained:
        from audio_sheet_retrieval.errors import AsrError

        raise AsrError("--pretrained selects a shipped model for evaluation; refinement writes "
                       "its own parameters under --exp_root (drop --pretrained)")
    exp = setup_experiment(args)
    load_model_state(exp.model, exp.paths.params)
    pools = load_pools(exp.data_root, exp.split_file, exp.config, kinds=("train", "valid"))
    sheets, specs = validation_pairs(pools["valid"], args.n_valid, args.seed)
    batch = exp.model.spec.batch_size
    _, before = evaluate_pairs(exp.model, sheets, specs, batch)
    rho = refine_cca(exp.model, pools["train"], args.n_train, seed=args.seed)
    _, after = evaluate_pairs(exp.model, sheets, specs, batch)
    out = exp.paths.estimated_uv().params
    save_atomic({"model": exp.model.state_dict()}, out)
    print(f"canonical correlations: top {rho[0]:.3f}, mean {rho.mean():.3f}")
    print(f"valid MRR (audio -> sheet): {before:.4f} before, {after:.4f} after refinement")
    print(f"parameters: {out}")
    return 0


if __name__ == "__main__":
    run_cli(main)

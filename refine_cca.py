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
    from audio_sheet_retrieval.errors import UsageError
    from audio_sheet_retrieval.scripts import experiment_parser, setup_experiment
    from audio_sheet_retrieval.train.checkpoint import load_model_state, model_meta, save_atomic
    from audio_sheet_retrieval.train.loop import evaluate_pairs, validation_pairs
    from audio_sheet_retrieval.train.refine import refine_cca

    p = experiment_parser(__doc__.split("\n\n")[0])
    p.add_argument("--n_train", type=int, default=25_000, help="training pairs for the CCA fit")
    p.add_argument("--n_valid", type=int, default=1_000, help="validation pairs for the check")
    args = p.parse_args()
    if args.pretrained:
        raise UsageError("--pretrained selects a shipped model for evaluation; refinement writes "
                         "its own parameters under --exp_root (drop --pretrained)")
    if args.n_valid < 2:
        raise UsageError(f"--n_valid must be >= 2, got {args.n_valid}")
    exp = setup_experiment(args)
    if args.n_train <= exp.model.spec.latent:
        raise UsageError(f"--n_train must exceed the code size {exp.model.spec.latent}, "
                         f"got {args.n_train}")
    ckpt = load_model_state(exp.model, exp.paths.params, exp.name)
    pools = load_pools(exp.data_root, exp.split_file, exp.config, kinds=("train", "valid"))
    pools["valid"].require(2, "valid", "the validation ranking")
    sheets, specs = validation_pairs(pools["valid"], args.n_valid, args.seed)
    batch = exp.model.spec.batch_size
    _, before = evaluate_pairs(exp.model, sheets, specs, batch)
    rho = refine_cca(exp.model, pools["train"], args.n_train, seed=args.seed)
    _, after = evaluate_pairs(exp.model, sheets, specs, batch)
    out = exp.paths.estimated_uv().params
    # the parameters' own record, plus the refit's (it has seen this split's training pieces)
    meta = {**model_meta(exp.model, model=exp.name), **(ckpt.get("meta") or {})}
    refit = exp.record()
    meta["cca_refit"] = {"n_train": args.n_train, "seed": args.seed,
                         "split_file": refit["split_file"], "split_digest": refit["split_digest"],
                         "train_pieces": refit["train_pieces"],
                         "data_manifest_sha1": refit["data_manifest_sha1"],
                         "correlations": [float(r) for r in rho],
                         "valid_mrr_before": before, "valid_mrr_after": after}
    save_atomic({"model": exp.model.state_dict(), "meta": meta}, out)
    print(f"canonical correlations: top {rho[0]:.3f}, mean {rho.mean():.3f}")
    print(f"valid MRR (audio -> sheet): {before:.4f} before, {after:.4f} after refinement")
    print(f"parameters: {out}")
    return 0


if __name__ == "__main__":
    run_cli(main)

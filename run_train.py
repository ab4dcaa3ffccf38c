#!/usr/bin/env python
"""Train an audio--sheet retrieval model.

Example::

    python run_train.py --model models/demo.py --data mutopia \
        --train_split data/msmd/splits/all_split.yaml --config exp_configs/demo.yaml --device cpu
"""

from audio_sheet_retrieval.errors import run_cli


def main() -> int:
    from audio_sheet_retrieval.scripts import experiment_parser, setup_experiment

    p = experiment_parser(__doc__.split("\n\n")[0])
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--no_dump", action="store_true", help="do not write parameters or results")
    p.add_argument("--show_architecture", action="store_true", help="print the network and exit")
    p.add_argument("--max_epochs", type=int, default=None, help="override the model's max epochs")
    p.add_argument("--epoch_samples", type=int, default=10_000, help="training pairs per epoch")
    p.add_argument("--n_valid", type=int, default=1_000, help="validation pairs per epoch")
    p.add_argument("--max_minutes", type=float, default=None,
                   help="wall-clock budget: stop before an epoch that would overrun it")
    p.add_argument("--workers", type=int, default=1,
                   help="processes making the training batches while the network trains (0: inline; "
                        "more on a GPU, whose steps are faster than one process's batches; the pairs "
                        "are the same with any number)")
    args = p.parse_args()
    from audio_sheet_retrieval.errors import UsageError

    if args.pretrained:
        raise UsageError("--pretrained selects a shipped model for evaluation; training writes "
                         "its own parameters under --exp_root (drop --pretrained)")
    for flag, value, least in (("--max_epochs", args.max_epochs, 1),
                               ("--epoch_samples", args.epoch_samples, 1),
                               ("--n_valid", args.n_valid, 2), ("--workers", args.workers, 0)):
        if value is not None and value < least:
            raise UsageError(f"{flag} must be >= {least}, got {value}")
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise UsageError(f"--max_minutes must be > 0, got {args.max_minutes}")
    exp = setup_experiment(args)
    if args.show_architecture:
        print(exp.model)
        print(f"{exp.model.n_parameters():,} trainable parameters")
        return 0

    from audio_sheet_retrieval.data.mutopia import load_pools
    from audio_sheet_retrieval.train.loop import TrainOptions, fit

    if not args.resume and exp.paths.last_state.exists() and not args.no_dump:
        print(f"note: {exp.paths.last_state} exists; starting over (use --resume to continue it)")
    pools = load_pools(exp.data_root, exp.split_file, exp.config, kinds=("train", "valid"))
    print(f"train: {len(pools['train'])} pairs from {len(pools['train'].pieces)} pieces, "
          f"valid: {len(pools['valid'])} pairs; {exp.model.n_parameters():,} parameters on {exp.device}")
    options = TrainOptions(epoch_samples=args.epoch_samples, n_valid=args.n_valid,
                           max_epochs=args.max_epochs, seed=args.seed, dump=not args.no_dump,
                           max_minutes=args.max_minutes, workers=args.workers)
    state = fit(exp.model, pools["train"], pools["valid"], exp.paths, exp.device, options,
                resume=args.resume, record=exp.record())
    print(f"best valid MRR {state.best_mrr:.4f} at epoch {state.best_epoch}"
          + ("" if args.no_dump else f"; parameters: {exp.paths.params}"))
    return 0


if __name__ == "__main__":
    run_cli(main)

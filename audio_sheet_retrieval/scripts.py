"""Argument parsing and set-up shared by the top-level scripts (run_train, refine_cca, run_eval...).

Exit statuses (through :func:`audio_sheet_retrieval.errors.run_cli`): 2 for a
wrong command line (argparse's own errors and :class:`UsageError`: a bad
option value, a missing model, config or split file), 1 for everything that
goes wrong at run time (:class:`AsrError`: a corrupt data file, a diverged
training, a full disk), 0 on success.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from audio_sheet_retrieval.config import settings
from audio_sheet_retrieval.config.exp_config import load_config
from audio_sheet_retrieval.errors import UsageError
from audio_sheet_retrieval.nn.module_loader import build_from_module, load_model_module, model_name
from audio_sheet_retrieval.train.experiment import ExperimentPaths, parse_device


def experiment_parser(description: str) -> argparse.ArgumentParser:
    """The original's common flags: --model --data --train_split --config --device."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", required=True, help="model file, e.g. models/mutopia_ccal_cont_rsz_dense.py")
    p.add_argument("--data", default="mutopia", choices=("mutopia",), help="data set (MSMD layout)")
    p.add_argument("--train_split", default=None,
                   help="split YAML (default: <data root>/splits/all_split.yaml)")
    p.add_argument("--config", default=None,
                   help="experiment config, e.g. exp_configs/full_aug.yaml (default with "
                        "--pretrained: the one the shipped model was trained with)")
    p.add_argument("--data_root", default=settings.DATA_ROOT_MSMD,
                   help="MSMD-layout data root (default: DATA_ROOT_MSMD = %(default)s)")
    p.add_argument("--exp_root", default=settings.EXP_ROOT,
                   help="experiment folder (default: EXP_ROOT = %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda0, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pretrained", action="store_true",
                   help="use the model shipped in pretrained/<model name>/ (CCA already refined)")
    return p


@dataclass
class Experiment:
    """A model module, its built network, the config and the experiment paths."""

    module: ModuleType
    model: torch.nn.Module
    config: dict
    split_file: Path
    data_root: Path
    paths: ExperimentPaths
    device: torch.device
    name: str = ""
    """The model file's name (``demo`` for ``models/demo.py``)."""

    def record(self) -> dict:
        """What the experiment's checkpoints and results record of it (plain data).

        The model's name, the config, and the split's provenance: file, content
        digest, train/valid pieces and the data manifest's digest (see
        :func:`~audio_sheet_retrieval.data.mutopia.split_provenance`).
        """
        from audio_sheet_retrieval.data.mutopia import split_provenance

        prov = split_provenance(self.data_root, self.split_file)
        prov.pop("test_pieces")
        return {"model": self.name, "config": self.config, **prov}

    def evaluation_provenance(self, ckpt: dict, allow_overlap: bool = False) -> dict:
        """Check that the split's test pieces are unseen by the parameters; fields for results.

        Parameters
        ----------
        ckpt : dict
            The loaded parameters (``paths.params``).
        allow_overlap : bool
            ``--allow_train_overlap``: warn instead of refusing.

        Returns
        -------
        dict
            See :func:`~audio_sheet_retrieval.train.checkpoint.eval_provenance`.

        Raises
        ------
        AsrError
            When test pieces were training pieces and ``allow_overlap`` is False.
        """
        from audio_sheet_retrieval.data.mutopia import split_provenance
        from audio_sheet_retrieval.pretrained import PRETRAINED_DIR, pretrained_meta
        from audio_sheet_retrieval.train.checkpoint import check_unseen, eval_provenance

        prov = split_provenance(self.data_root, self.split_file)
        if not ckpt.get("meta") and self.paths.params.parent.parent == PRETRAINED_DIR:
            # a shipped model's weights-only file: its meta.yaml names the pieces it saw
            meta = pretrained_meta(self.paths.params.parent.name)
            ckpt = {**ckpt, "meta": {"train_pieces": meta.get("train_pieces")}}
        overlap = check_unseen(ckpt, self.paths.params, prov["test_pieces"], self.split_file,
                               allow_overlap)
        if overlap is None:
            print(f"note: {self.paths.params} records no training pieces; the test pieces of "
                  f"{self.split_file} cannot be checked against them")
        elif overlap:
            print(f"warning: {len(overlap)} test piece(s) of {self.split_file} were training "
                  "pieces (--allow_train_overlap); the figures do not measure generalisation")
        return eval_provenance(ckpt, prov, overlap)


def add_overlap_argument(parser: argparse.ArgumentParser) -> None:
    """``--allow_train_overlap`` for the evaluation scripts."""
    parser.add_argument("--allow_train_overlap", action="store_true",
                        help="evaluate even if test pieces were training pieces of the parameters "
                             "(smoke tests on tiny data only; recorded in the result files)")


def setup_experiment(args: argparse.Namespace, estimate_uv: bool = False,
                     evaluating: bool = False) -> Experiment:
    """Resolve the flags into an :class:`Experiment` (one clear error line on bad input).

    With ``--pretrained`` (or, when ``evaluating``, if this experiment has no
    trained parameters but a shipped model of the same name exists) the
    parameters come from ``pretrained/<model>/params.pt`` and results go to
    ``EXP_ROOT/<model>_pretrained/``.
    """
    from audio_sheet_retrieval import pretrained

    device = parse_device(args.device)
    name = model_name(args.model)
    use_shipped = bool(getattr(args, "pretrained", False))
    if use_shipped:
        if name not in pretrained.available():
            raise UsageError(f"--pretrained: no shipped model called {name!r} (shipped: "
                             f"{', '.join(pretrained.available()) or 'none'}); drop --pretrained "
                             "or pass one of those model files")
        meta = pretrained.pretrained_meta(name)
        args.config = args.config or str(pretrained.REPO_ROOT / meta["config_file"])
    if args.config is None:
        raise UsageError("--config is required (e.g. --config exp_configs/full_aug.yaml), "
                         "unless --pretrained")
    if not Path(args.config).is_file():
        raise UsageError(f"--config {args.config}: config file not found; pick one of "
                         "exp_configs/*.yaml")
    module = load_model_module(args.model)
    config = load_config(args.config)
    data_root = Path(args.data_root)
    split_file = Path(args.train_split) if args.train_split else data_root / "splits" / "all_split.yaml"
    if not split_file.is_file():
        raise UsageError(f"{split_file}: split file not found; pass --train_split or build data "
                         "with build_dataset.py")
    paths = ExperimentPaths.create(args.exp_root, name, split_file, args.config,
                                   estimate_uv=estimate_uv)
    if evaluating and not use_shipped and not paths.params.exists() and name in pretrained.available():
        print(f"note: {paths.params} not found; using the shipped model pretrained/{name}")
        use_shipped = True
    overrides = None
    if use_shipped:
        meta = pretrained.pretrained_meta(name)
        shipped = meta["config"]
        if shipped["SPEC_CONTEXT"] != config["SPEC_CONTEXT"]:
            raise UsageError(f"{args.config}: SPEC_CONTEXT {config['SPEC_CONTEXT']} differs from "
                             f"the shipped model's {shipped['SPEC_CONTEXT']}; use a config with "
                             f"{shipped['SPEC_CONTEXT']} frames")
        overrides = meta.get("spec")  # spec fields the shipped weights were trained with
        paths = ExperimentPaths(Path(args.exp_root) / f"{name}_pretrained", paths.tag,
                                pretrained.pretrained_params(name))
    torch.manual_seed(args.seed)
    try:
        model = build_from_module(module, config, overrides,
                                  f"pretrained/{name}/meta.yaml").to(device)
    except (ValueError, KeyError) as err:
        raise UsageError(f"{args.model}: cannot build the model for {args.config} ({err})") from None
    return Experiment(module, model, config, split_file, data_root, paths, device, name)

"""Argument parsing and set-up shared by the top-level scripts (run_train, refine_cca, run_eval...)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from audio_sheet_retrieval.config import settings
from audio_sheet_retrieval.config.exp_config import load_config
from audio_sheet_retrieval.errors import AsrError
from audio_sheet_retrieval.nn.module_loader import load_model_module, model_name
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
        meta = pretrained.pretrained_meta(name)
        args.config = args.config or str(pretrained.REPO_ROOT / meta["config_file"])
    if args.config is None:
        raise AsrError("--config is required (e.g. --config exp_configs/full_aug.yaml), "
                       "unless --pretrained")
    module = load_model_module(args.model)
    config = load_config(args.config)
    data_root = Path(args.data_root)
    split_file = Path(args.train_split) if args.train_split else data_root / "splits" / "all_split.yaml"
    if not split_file.is_file():
        raise AsrError(f"{split_file}: split file not found; pass --train_split or build data "
                       "with build_dataset.py")
    torch.manual_seed(args.seed)
    try:
        model = module.build_model(config).to(device)
    except (ValueError, KeyError) as err:
        raise AsrError(f"{args.model}: cannot build the model for {args.config} ({err})") from None
    paths = ExperimentPaths.create(args.exp_root, name, split_file, args.config,
                                   estimate_uv=estimate_uv)
    if evaluating and not use_shipped and not paths.params.exists() and name in pretrained.available():
        print(f"note: {paths.params} not found; using the shipped model pretrained/{name}")
        use_shipped = True
    if use_shipped:
        shipped = pretrained.pretrained_meta(name)["config"]
        if shipped["SPEC_CONTEXT"] != config["SPEC_CONTEXT"]:
            raise AsrError(f"{args.config}: SPEC_CONTEXT {config['SPEC_CONTEXT']} differs from the "
                           f"shipped model's {shipped['SPEC_CONTEXT']}; use a config with "
                           f"{shipped['SPEC_CONTEXT']} frames")
        paths = ExperimentPaths(Path(args.exp_root) / f"{name}_pretrained", paths.tag,
                                pretrained.pretrained_params(name))
    return Experiment(module, model, config, split_file, data_root, paths, device)

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
    p.add_argument("--config", required=True, help="experiment config, e.g. exp_configs/full_aug.yaml")
    p.add_argument("--data_root", default=settings.DATA_ROOT_MSMD,
                   help="MSMD-layout data root (default: DATA_ROOT_MSMD = %(default)s)")
    p.add_argument("--exp_root", default=settings.EXP_ROOT,
                   help="experiment folder (default: EXP_ROOT = %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda0, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0)
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


def setup_experiment(args: argparse.Namespace, estimate_uv: bool = False) -> Experiment:
    """Resolve the flags into an :class:`Experiment` (one clear error line on bad input)."""
    device = parse_device(args.device)
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
    paths = ExperimentPaths.create(args.exp_root, model_name(args.model), split_file, args.config,
                                   estimate_uv=estimate_uv)
    return Experiment(module, model, config, split_file, data_root, paths, device)

"""Trained models shipped in the repository (``pretrained/<model>/``).

Each folder holds ``params.pt`` (weights only, the CCA layer refined on
25,000 training pairs) and ``meta.yaml`` (model file, experiment config,
data, training run and test figures); ``pretrained/MODEL_CARD.md`` describes
them. :func:`load_pretrained` builds the model and loads the weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from audio_sheet_retrieval.config.exp_config import validate_config
from audio_sheet_retrieval.errors import AsrError

REPO_ROOT = Path(__file__).resolve().parents[1]
PRETRAINED_DIR = REPO_ROOT / "pretrained"
DEFAULT_MODEL = "mutopia_ccal_cont_rsz_dense_att"


def available() -> list[str]:
    """Names of the shipped models."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "params.pt").is_file())


def pretrained_params(name: str) -> Path:
    """``pretrained/<name>/params.pt``; :class:`AsrError` naming the shipped ones otherwise."""
    path = PRETRAINED_DIR / name / "params.pt"
    if not path.is_file():
        have = ", ".join(available()) or "none"
        raise AsrError(f"{path}: no shipped model called {name!r} (shipped: {have})")
    return path


def pretrained_meta(name: str) -> dict:
    """The ``meta.yaml`` of a shipped model."""
    path = pretrained_params(name).with_name("meta.yaml")
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise AsrError(f"{path}: unreadable model description ({type(err).__name__})") from None


def load_pretrained(name: str = DEFAULT_MODEL, device: str | torch.device = "cpu"):
    """Build a shipped model and load its weights.

    Parameters
    ----------
    name : str
        Folder under ``pretrained/`` (the model file's name).
    device : str or torch.device

    Returns
    -------
    model : TwoBranchModel
        In eval mode, on ``device``.
    config : dict
        The experiment configuration it was trained with.
    meta : dict
        The model description.
    """
    from audio_sheet_retrieval.nn.module_loader import build_from_module, load_model_module
    from audio_sheet_retrieval.train.checkpoint import load_model_state

    meta = pretrained_meta(name)
    config = validate_config(meta["config"], f"pretrained/{name}/meta.yaml")
    module = load_model_module(REPO_ROOT / meta["model_file"])
    # 'spec': fields of the model file's spec that the shipped weights were trained without
    model = build_from_module(module, config, meta.get("spec"),
                              f"pretrained/{name}/meta.yaml").to(device)
    load_model_state(model, pretrained_params(name))
    return model.eval(), config, meta

"""Checkpoints written atomically (temporary file + rename) and read without pickle."""

from __future__ import annotations

from pathlib import Path

import torch

from audio_sheet_retrieval.atomic import atomic_path
from audio_sheet_retrieval.errors import AsrError


def save_atomic(obj: dict, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename over it."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain data only).

    Raises
    ------
    AsrError
        When the file is missing or not a readable checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"{path}: checkpoint not found; train first with run_train.py "
                       "(or refine_cca.py for --estimate_UV)")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle/zip errors of many kinds
        raise AsrError(f"{path}: not a readable checkpoint ({type(err).__name__}); "
                       "delete it and train again") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise AsrError(f"{path}: not a checkpoint of this toolkit (no 'model' entry)")
    return obj


def load_model_state(model: torch.nn.Module, path: str | Path) -> dict:
    """Load the ``model`` entry of a checkpoint into ``model``; returns the checkpoint."""
    ckpt = load_checkpoint(path, map_location=next(model.parameters()).device)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise AsrError(f"{path}: parameters do not fit this model "
                       f"({str(err).splitlines()[0][:120]}); check --model") from None
    return ckpt

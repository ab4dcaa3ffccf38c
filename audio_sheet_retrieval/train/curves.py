"""Training curves: a YAML of per-epoch figures and a PNG plot."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402


def write_results(history: list[dict], path: Path, **extra) -> None:
    """Per-epoch history as YAML, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump({**extra, "epochs": history}, fh, sort_keys=False)
    os.replace(tmp, path)


def plot_curves(history: list[dict], path: Path, title: str = "") -> None:
    """PNG of train/valid loss and valid MRR per epoch."""
    if not history:
        return
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax1.plot(epochs, [h["valid_loss"] for h in history], label="valid")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("ranking loss")
    ax1.legend()
    ax2.plot(epochs, [h["valid_mrr"] for h in history], color="tab:green")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("valid MRR (audio -> sheet)")
    fig.suptitle(title)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png")
    os.close(fd)
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)

"""Training curves: a YAML of per-epoch figures and a PNG plot."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from audio_sheet_retrieval.atomic import save_figure_atomic, write_yaml_atomic


def write_results(history: list[dict], path: Path, **extra) -> None:
    """Per-epoch history as YAML, written atomically."""
    write_yaml_atomic({**extra, "epochs": history}, path)


def plot_curves(history: list[dict], path: Path, title: str = "") -> None:
    """PNG of train/valid loss and valid MRR per epoch, written atomically."""
    if not history:
        return
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
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
    save_figure_atomic(fig, path)

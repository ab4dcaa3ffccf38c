"""A report folder people can look at: the metrics table, histograms, curves, attention, retrievals."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from audio_sheet_retrieval.atomic import save_figure_atomic, write_text_atomic
from audio_sheet_retrieval.data.pools import SnippetPool
from audio_sheet_retrieval.eval.snippet_retrieval import evenly_spaced
from audio_sheet_retrieval.eval.summary import results_table


def plot_attention(model, pool: SnippetPool, path: Path, n: int = 4) -> Path | None:
    """PNG of ``n`` test excerpts with the model's attention weight of every frame.

    Returns None for a model without attention.
    """
    if model.attention is None:
        return None
    idx = evenly_spaced(len(pool), n)
    _, specs = pool.pairs(idx)
    model.eval()
    with torch.no_grad():
        _, weights = model.encode_spec(model.prepare_spec(specs).to(model.device), return_attention=True)
    weights = weights.cpu().numpy()
    fig = Figure(figsize=(3.2 * len(idx), 4.4))
    axes = fig.subplots(2, len(idx), sharex="col", squeeze=False,
                        gridspec_kw={"height_ratios": [3, 1]})
    for j in range(len(idx)):
        axes[0, j].imshow(specs[j], origin="lower", aspect="auto", cmap="magma")
        axes[0, j].set_title(pool.pieces[pool.entity_piece[idx[j]]].name[-22:], fontsize=8)
        axes[1, j].plot(weights[j] * specs.shape[2], color="tab:blue")
        axes[1, j].axhline(1.0, color="gray", linewidth=0.5)
        axes[1, j].set_xlabel("frame (20 fps)")
    axes[0, 0].set_ylabel("band")
    axes[1, 0].set_ylabel("attention x T")
    fig.suptitle("soft attention over the frames of test excerpts (1 = uniform)")
    fig.tight_layout()
    return save_figure_atomic(fig, path)


def plot_retrievals(model, pool: SnippetPool, path: Path, n_queries: int = 4, top: int = 3,
                    n_candidates: int = 500) -> Path:
    """PNG of audio queries (rows) beside their top sheet snippets among ``n_candidates`` test pairs.

    The true partner is framed green, others red.
    """
    idx = evenly_spaced(len(pool), min(n_candidates, len(pool)))
    sheets, specs = pool.pairs(idx)
    z_sheet = model.embed_sheet(sheets).cpu().numpy()
    z_audio = model.embed_spec(specs).cpu().numpy()
    queries = evenly_spaced(len(idx), n_queries)
    fig = Figure(figsize=(2.6 * (top + 1), 2.3 * len(queries)))
    axes = fig.subplots(len(queries), top + 1, squeeze=False)
    for row, q in enumerate(queries):
        order = np.argsort(-(z_sheet @ z_audio[q]))
        rank = int(np.flatnonzero(order == q)[0]) + 1
        axes[row, 0].imshow(specs[q], origin="lower", aspect="auto", cmap="magma")
        axes[row, 0].set_title(f"audio query (true rank {rank})", fontsize=8)
        for col, c in enumerate(order[:top], start=1):
            ax = axes[row, col]
            ax.imshow(sheets[c], cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"#{col}", fontsize=8)
            for side in ax.spines.values():
                side.set_edgecolor("tab:green" if c == q else "tab:red")
                side.set_linewidth(3)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"audio -> sheet: top {top} of {len(idx)} test snippets (green = true partner)")
    fig.tight_layout()
    return save_figure_atomic(fig, path)


def write_report(out: Path, model_folders: list[Path], model, test_pool: SnippetPool,
                 title: str = "audio-sheet retrieval report") -> Path:
    """Write ``out/report.md`` with the metrics table and every figure.

    Copies the rank histograms and training curves found in ``model_folders``
    and draws the attention and retrieval figures with ``model``.
    """
    out.mkdir(parents=True, exist_ok=True)
    figures = []
    for folder in model_folders:
        for png in sorted(folder.glob("*.png")):
            target = out / f"{folder.name}__{png.name}"
            shutil.copyfile(png, target)
            figures.append(target)
    for made in (plot_attention(model, test_pool, out / "attention.png"),
                 plot_retrievals(model, test_pool, out / "retrievals.png")):
        if made is not None:
            figures.append(made)
    table = results_table(model_folders)
    write_text_atomic(table + "\n", out / "table.md")
    lines = [f"# {title}", "", table, "", "## Figures", ""]
    lines += [f"![{f.stem}]({f.name})" for f in figures]
    return write_text_atomic("\n".join(lines) + "\n", out / "report.md")

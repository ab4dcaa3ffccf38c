"""Looking at the data: one system's noteheads over its spectrogram, and snippet pairs."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from audio_sheet_retrieval.atomic import save_figure_atomic
from audio_sheet_retrieval.data.msmd import Piece
from audio_sheet_retrieval.data.pools import SnippetPool
from audio_sheet_retrieval.data.prepare import place_noteheads, prepare_piece


def plot_alignment(piece: Piece, performance: str, system: int, path: Path) -> Path:
    """PNG of one unrolled system with its aligned noteheads coloured by onset time,
    above the performance's spectrogram with onset ticks in the same colours.

    Parameters
    ----------
    piece : Piece
    performance : str
        Performance name.
    system : int
        0-based system index (reading order).
    path : Path
        Output PNG.
    """
    perf = piece.load_performance(performance)
    prepared = prepare_piece(piece, [perf.synth], (perf.tempo, perf.tempo))
    unrolled = prepared.unrolled
    system = min(system, len(unrolled.systems) - 1)
    x0 = unrolled.x_offsets[system]
    x1 = x0 + int(round(unrolled.systems[system].right - unrolled.systems[system].left))
    key = f"{performance}_onset_seconds"
    # (strip row, strip col, onset s) of the system's noteheads, placed as the pools place them
    heads = np.array([(h.row, h.x, float(h.data[key]))
                      for h in place_noteheads(piece.load_score().load_mungos(), unrolled)
                      if h.system == system and key in h.data]).reshape(-1, 3)
    spec = perf.load_spectrogram()
    fps = 20
    t0, t1 = (heads[:, 2].min() - 0.5, heads[:, 2].max() + 1.0) if len(heads) else (0.0, 5.0)
    f0, f1 = max(int(t0 * fps), 0), min(int(t1 * fps), spec.shape[1])
    fig = Figure(figsize=(14, 7))
    ax1, ax2 = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1, 1]})
    ax1.imshow(unrolled.strip[:, x0:x1], cmap="gray", extent=(x0, x1, unrolled.strip.shape[0], 0))
    norm = Normalize(t0, t1)
    ax1.scatter(heads[:, 1], heads[:, 0], c=heads[:, 2], cmap="viridis", norm=norm, s=30,
                edgecolors="red", linewidths=0.5)
    ax1.set_title(f"{piece.name}: system {system + 1}, noteheads coloured by onset time "
                  f"({performance})")
    ax1.set_xlabel("strip x (pixels)")
    ax2.imshow(spec[:, f0:f1], origin="lower", aspect="auto", cmap="magma",
               extent=(f0 / fps, f1 / fps, 0, spec.shape[0]))
    colors = matplotlib.colormaps["viridis"](norm(heads[:, 2]))
    for (_, _, t), color in zip(heads, colors):
        ax2.axvline(np.ceil(t * fps) / fps, ymin=0.0, ymax=0.08, color=color, linewidth=2)
    ax2.set_xlabel("time (seconds)")
    ax2.set_ylabel("band (92 log-frequency bins)")
    ax2.set_title("spectrogram with onset-frame ticks")
    fig.tight_layout()
    return save_figure_atomic(fig, path)


def plot_snippet_grid(pool: SnippetPool, path: Path, n: int = 8, seed: int = 0,
                      augment: bool = True) -> Path:
    """PNG grid of ``n`` sampled pairs: sheet snippet above its spectrogram excerpt."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    sheets, specs = pool.pairs(idx, augment=augment, rng=rng)
    fig = Figure(figsize=(2.2 * len(idx), 4.6))
    axes = fig.subplots(2, len(idx), squeeze=False)
    for j, e in enumerate(idx):
        axes[0, j].imshow(sheets[j], cmap="gray", vmin=0, vmax=255)
        axes[0, j].axvline(sheets.shape[2] / 2, color="red", linewidth=0.6)
        axes[0, j].set_title(pool.pieces[pool.entity_piece[e]].name[-18:], fontsize=7)
        axes[1, j].imshow(specs[j], origin="lower", aspect="auto", cmap="magma")
        axes[1, j].axvline(specs.shape[2] / 2, color="cyan", linewidth=0.6)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("sampled (sheet snippet, spectrogram excerpt) pairs; lines mark the centres")
    fig.tight_layout()
    return save_figure_atomic(fig, path)


def plot_piece(root: str | Path, name: str, out: Path) -> list[Path]:
    """The alignment PNG (first system, tempo-1 performance) and a snippet grid of a built piece."""
    from audio_sheet_retrieval.data.pools import Augmentation
    from audio_sheet_retrieval.errors import AsrError

    piece = Piece(root, name)
    perfs = piece.available_performances
    if not perfs:
        raise AsrError(f"{piece.folder}: the piece has no performances; rebuild it")
    perf = next((p for p in perfs if "_tempo-1000_" in p), perfs[0])
    pool = SnippetPool([prepare_piece(piece)], augmentation=Augmentation(5, (0.95, 1.05), 1))
    return [plot_alignment(piece, perf, 0, out / f"{name}_alignment.png"),
            plot_snippet_grid(pool, out / f"{name}_snippets.png")]

"""Result files: naming and writing them (CSV, PNG; atomically) and collecting them into one table.

Files beside a model's parameters (``EXP_ROOT/<model>[_est_UV]/``), names as
in the original:

* ``eval_<tag>_<S2A|A2S>_<tempo x 1000>.yaml`` -- snippet retrieval
  (``run_eval.py --dump_results``), with ``..._ranks.csv`` and ``..._ranks.png``;
* ``retrieval_<tag>_<S2A|A2S>.yaml`` -- piece identification
  (``*_server.py --full_eval --dump_results``).

A run with ``--test_synth`` other than the config's appends ``_<synth>`` (and
the piece-ID dumps ``_<synth>_<tempo x 1000>`` for either override), so an
extra evaluation never overwrites the standard one.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import yaml
from matplotlib.figure import Figure

from audio_sheet_retrieval.atomic import save_figure_atomic, write_text_atomic
from audio_sheet_retrieval.errors import AsrError

# ----------------------------------------------------------------- file names


def tempo_code(tempo: float) -> int:
    """Tempo ratio as in file names: ratio x 1000 (1.1 -> 1100)."""
    return int(round(float(tempo) * 1000))


def eval_stem(tag: str, direction: str, tempo: float, synth: str | None = None) -> str:
    """``eval_<tag>_<direction>_<tempo x 1000>[_<synth>]`` (synth only when overridden)."""
    return f"eval_{tag}_{direction}_{tempo_code(tempo)}" + (f"_{synth}" if synth else "")


def retrieval_stem(tag: str, direction: str, synth: str | None = None,
                   tempo: float | None = None) -> str:
    """``retrieval_<tag>_<direction>[_<synth>_<tempo x 1000>]`` (suffix only for overrides)."""
    stem = f"retrieval_{tag}_{direction}"
    if synth is not None or tempo is not None:
        stem += f"_{synth or 'default'}_{tempo_code(tempo if tempo is not None else 1.0)}"
    return stem


# ----------------------------------------------------------------- writing


def write_ranks_csv(path: str | Path, pieces: Sequence[str], ranks: np.ndarray) -> Path:
    """``index,piece,rank`` rows, one per query, written atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["index", "piece", "rank"])
    for i, (piece, rank) in enumerate(zip(pieces, ranks)):
        writer.writerow([i, piece, int(rank)])
    return write_text_atomic(buf.getvalue(), path)


def plot_rank_histogram(ranks: np.ndarray, path: str | Path, title: str = "") -> Path:
    """PNG histogram of 1-based ranks on logarithmic bins, written atomically.

    Parameters
    ----------
    ranks : np.ndarray, shape (n,)
        1-based ranks.
    path : path
        Output ``.png``.
    title : str
        Figure title.
    """
    ranks = np.asarray(ranks)
    edges = np.unique(np.round(np.logspace(0, np.log10(max(ranks.max(), 2)) + 1e-9, 30)))
    edges = np.append(edges, edges[-1] + 1) - 0.5
    fig = Figure(figsize=(6, 3.4))
    ax = fig.subplots()
    ax.hist(ranks, bins=edges, color="tab:blue")
    ax.set_xscale("log")
    ax.set_xlabel("rank of the true partner (log scale)")
    ax.set_ylabel("queries")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure_atomic(fig, path)


# ----------------------------------------------------------------- tables


FORMATS = {"MRR": "{:.3f}", "MedR": "{:g}", "MeanR": "{:.1f}", "mean_dist": "{:.3f}"}
"""Number formats by column; other floats get ``{:.1f}`` (percentages)."""


def markdown_table(rows: list[dict], columns: Sequence[str],
                   formats: dict[str, str] | None = None) -> str:
    """A Markdown table of ``rows`` (missing cells: ``-``).

    Parameters
    ----------
    rows : list of dict
        One mapping per row; keys are column names.
    columns : sequence of str
        Columns, in order.
    formats : dict, optional
        Format string per column for floats (default :data:`FORMATS`, else ``{:.1f}``).
    """
    formats = FORMATS if formats is None else formats

    def cell(column: str, value) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return formats.get(column, "{:.1f}").format(value)
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(c, r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------- collecting

TABLE_COLUMNS = ("model", "config", "direction", "test", "R@1", "R@5", "R@25", "MRR", "MedR",
                 "ID top-1", "ID top-5", "split")


def _read_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise AsrError(f"{path}: not a readable result YAML ({str(err).splitlines()[0]})") from None


def _split_label(data: dict) -> str:
    """``<split stem> <digest[:8]>`` of a result file (results of different splits never merge)."""
    label = str(data.get("split", "-"))
    return f"{label} {data['split_digest'][:8]}" if data.get("split_digest") else label


def _key(data: dict, folder: Path, stem: str, prefix: str) -> tuple:
    """(model, config, direction, test, split) of a result file, from its fields or else its name."""
    parts = stem[len(prefix):].split("_")
    direction = data.get("direction") or next((p for p in parts if p in ("S2A", "A2S")), "?")
    if "model" in data:
        model = data["model"] + ("_est_UV" if data.get("estimate_UV") else "")
    else:
        model = folder.name
    config = data.get("config")
    if config is None:  # tag = <split>_<config>; the config stem is what follows the split
        tag = "_".join(parts[:parts.index(direction)] if direction in parts else parts)
        config = tag.split("_split_", 1)[-1]
    test = (f"{data['test_synth']}@{float(data['test_tempo']):g}" if "test_synth" in data
            else "-")
    if data.get("vote_norm", "none") != "none":  # a piece-ID variant: a row of its own
        direction += f" (votes/{data['vote_norm']}, k={data.get('k')})"
    return model, config, direction, test, _split_label(data)


def collect_results(folders: Iterable[str | Path]) -> list[dict]:
    """One row per (model, config, direction, test condition) over the folders' dumps.

    Parameters
    ----------
    folders : iterable of path
        Model folders (``EXP_ROOT/<model>[_est_UV]``).

    Returns
    -------
    list of dict
        Keys of :data:`TABLE_COLUMNS`; R@k in %, piece-ID ratios in %; ``split`` is
        the split's name and content digest, so results of two splits stay apart.
    """
    rows: dict[tuple, dict] = {}
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise AsrError(f"{folder}: not a model folder; pass EXP_ROOT/<model>[_est_UV]")
        for path in sorted(folder.glob("eval_*.yaml")):
            data = _read_yaml(path)
            if not isinstance(data, dict) or "map" not in data:
                continue
            row = rows.setdefault(_key(data, folder, path.stem, "eval_"), {})
            recall = data.get("recall_at_k", {})
            row.update({"R@1": _float(recall.get("1")), "R@5": _float(recall.get("5")),
                        "R@25": _float(recall.get("25")), "MRR": _float(data["map"]),
                        "MedR": _float(data.get("med_rank"))})
        for path in sorted(folder.glob("retrieval_*.yaml")):
            data = _read_yaml(path)
            ranks = data if isinstance(data, list) else (data or {}).get("ranks")
            if not ranks:
                continue
            ranks = np.asarray(ranks)
            meta = data if isinstance(data, dict) else {}
            row = rows.setdefault(_key(meta, folder, path.stem, "retrieval_"), {})
            row.update({"ID top-1": 100.0 * float(np.mean(ranks == 1)),
                        "ID top-5": 100.0 * float(np.mean(ranks <= 5))})
    out = []
    for (model, config, direction, test, split), row in sorted(rows.items()):
        out.append({"model": model, "config": config, "direction": direction, "test": test, **row,
                    "split": split})
    return out


def _float(value) -> float | None:
    return None if value is None else float(value)


def results_table(folders: Iterable[str | Path]) -> str:
    """The Markdown table of :func:`collect_results` (an error if nothing was found)."""
    folders = list(folders)
    rows = collect_results(folders)
    if not rows:
        raise AsrError(f"no eval_*.yaml or retrieval_*.yaml in {', '.join(map(str, folders))}; "
                       "run run_eval.py / *_server.py with --dump_results first")
    return markdown_table(rows, TABLE_COLUMNS)

"""A whole build: pieces in parallel, then the manifest and the split files."""

from __future__ import annotations

import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import yaml

from audio_sheet_retrieval.atomic import write_yaml_atomic
from audio_sheet_retrieval.build.pipeline import BuildOptions, PieceReport, build_collection
from audio_sheet_retrieval.build.sources import PieceSource
from audio_sheet_retrieval.build.workspace import Workspace
from audio_sheet_retrieval.data.layout import DATA_FORMAT_VERSION, FORMAT_KEY, is_other_format, read_meta
from audio_sheet_retrieval.data.splits import demo_split, make_splits, split_digest, write_split


def built_metas(root: Path) -> dict[str, dict]:
    """``meta.yml`` of each piece of a data root that the readers accept, by name.

    Folders with a readable ``meta.yml``, except those that ``build_dataset.py``
    wrote in another data format (a piece of the real MSMD download counts).
    """
    root = Path(root)
    if not root.is_dir():
        return {}
    out = {}
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and not folder.name.startswith("."):
            meta = read_meta(folder)
            if meta is not None and not is_other_format(meta):
                out[folder.name] = meta
    return out


def built_pieces(root: Path) -> list[str]:
    """Names of the pieces of a data root that the readers accept (see :func:`built_metas`)."""
    return list(built_metas(root))


def write_splits(root: Path, seed: int = 0) -> dict[str, Path]:
    """Write ``splits/all_split.yaml`` and ``splits/demo_split.yaml`` over the built pieces.

    Each piece's kind comes from its name (:func:`make_splits`). An existing
    split file is never changed: when it holds another split, the new one is
    written beside it under a name with its digest (see
    :func:`~audio_sheet_retrieval.data.splits.write_split`).

    Returns
    -------
    dict
        ``{"all": path, "demo": path}`` of the files that hold the splits.
    """
    split = make_splits(built_pieces(root), seed)
    folder = Path(root) / "splits"
    return {"all": write_split(split, folder / "all_split.yaml"),
            "demo": write_split(demo_split(split, seed), folder / "demo_split.yaml")}


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "not installed"


def tool_versions() -> dict[str, str]:
    """Versions of the libraries and programs a build depends on."""
    import music21
    import verovio

    import audio_sheet_retrieval

    return {
        "audio_sheet_retrieval": audio_sheet_retrieval.__version__,
        "python": platform.python_version(), "numpy": np.__version__,
        "music21": str(music21.__version__), "verovio": verovio.toolkit().getVersion(),
        "lilypond": _version(["lilypond", "--version"]),
        "fluidsynth": _version(["fluidsynth", "--version"]),
        "timidity": _version(["timidity", "--version"]),
    }


def collection_totals(root: Path) -> dict:
    """Counts over every built piece of a data root (read from their ``meta.yml``)."""
    totals = {"pieces": 0, "pages": 0, "systems": 0, "noteheads": 0, "aligned_noteheads": 0,
              "onset_noteheads": 0, "note_events": 0, "performances": 0, "audio_hours_per_version": 0.0}
    for meta in built_metas(root).values():
        totals["pieces"] += 1
        for key in ("pages", "systems", "noteheads", "aligned_noteheads", "onset_noteheads",
                    "note_events"):
            totals[key] += int(meta.get(key, 0))
        totals["performances"] += len(meta.get("performances", []))
        totals["audio_hours_per_version"] += float(meta.get("duration_s_at_tempo_1", 0.0)) / 3600
    totals["audio_hours_per_version"] = round(totals["audio_hours_per_version"], 3)
    if totals["onset_noteheads"]:
        totals["aligned_fraction"] = round(totals["aligned_noteheads"] / totals["onset_noteheads"], 5)
    return totals


def build_dataset(sources: list[PieceSource], root: Path, options: BuildOptions, jobs: int = 1,
                  force: bool = False, seed: int = 0) -> tuple[list[PieceReport], dict]:
    """Build pieces, then write the manifest and the splits of everything built.

    Returns
    -------
    reports : list of PieceReport
    manifest : dict
        Also written to ``<root>/manifest.yaml``.
    """
    start = time.time()
    root = Path(root)
    with Workspace(root) as workspace:
        reports = build_collection(sources, root, options, jobs=jobs, force=force,
                                   workspace=workspace)
        splits = write_splits(root, seed)
        manifest = _manifest(root, reports, options, jobs, seed, splits, start)
        write_yaml_atomic(manifest, root / "manifest.yaml")
    return reports, manifest


def _manifest(root: Path, reports: list[PieceReport], options: BuildOptions, jobs: int, seed: int,
              splits: dict[str, Path], start: float) -> dict:
    built = [r for r in reports if r.status == "built"]
    return {
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        FORMAT_KEY: DATA_FORMAT_VERSION,
        "versions": tool_versions(),
        "options": {"engraver": options.engraver, "synths": list(options.synths),
                    "tempi": list(options.tempi), "keep_audio": options.keep_audio,
                    "jobs": jobs, "seed": seed},
        "last_run": {
            "requested": len(reports), "built": len(built),
            "skipped": sum(r.status == "skipped" for r in reports),
            "failed": {r.name: r.error for r in reports if r.status == "failed"},
            "wall_seconds": round(time.time() - start, 1),
        },
        "totals": collection_totals(root),
        "splits": {k: str(v.relative_to(root)) for k, v in splits.items()},
        "split_digests": {k: split_digest(yaml.safe_load(v.read_text())) for k, v in splits.items()},
    }

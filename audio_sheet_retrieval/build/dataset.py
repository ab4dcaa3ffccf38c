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

SPLIT_FRACTIONS = {"valid": 0.06, "test": 0.2}
DEMO_SIZES = {"train": 24, "valid": 4, "test": 8}


def built_pieces(root: Path) -> list[str]:
    """Names of the complete pieces in a data root (those with a ``meta.yml``)."""
    return sorted(p.name for p in Path(root).iterdir()
                  if p.is_dir() and (p / "meta.yml").is_file()) if Path(root).is_dir() else []


def make_splits(names: list[str], seed: int = 0,
                fractions: dict[str, float] = SPLIT_FRACTIONS) -> dict[str, list[str]]:
    """A reproducible train/valid/test split of piece names."""
    names = sorted(names)
    order = np.random.default_rng(seed).permutation(len(names))
    n_test = max(1, int(round(fractions["test"] * len(names)))) if len(names) >= 3 else 0
    n_valid = max(1, int(round(fractions["valid"] * len(names)))) if len(names) >= 3 else 0
    test = sorted(names[i] for i in order[:n_test])
    valid = sorted(names[i] for i in order[n_test:n_test + n_valid])
    train = sorted(names[i] for i in order[n_test + n_valid:])
    return {"train": train, "valid": valid, "test": test}


def demo_split(split: dict[str, list[str]], seed: int = 0,
               sizes: dict[str, int] = DEMO_SIZES) -> dict[str, list[str]]:
    """A small subset of a split, for quick experiments."""
    rng = np.random.default_rng(seed + 1)
    out = {}
    for kind, names in split.items():
        k = min(sizes[kind], len(names))
        out[kind] = sorted(names[i] for i in rng.choice(len(names), k, replace=False)) if k else []
    return out


def write_splits(root: Path, seed: int = 0) -> dict[str, Path]:
    """Write ``splits/all_split.yaml`` and ``splits/demo_split.yaml`` over the built pieces."""
    split = make_splits(built_pieces(root), seed)
    paths = {"all": root / "splits" / "all_split.yaml", "demo": root / "splits" / "demo_split.yaml"}
    write_yaml_atomic(split, paths["all"])
    write_yaml_atomic(demo_split(split, seed), paths["demo"])
    return paths


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
    for name in built_pieces(root):
        meta = yaml.safe_load((root / name / "meta.yml").read_text())
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
    reports = build_collection(sources, root, options, jobs=jobs, force=force)
    splits = write_splits(root, seed)
    built = [r for r in reports if r.status == "built"]
    manifest = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
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
    }
    write_yaml_atomic(manifest, root / "manifest.yaml")
    return reports, manifest
